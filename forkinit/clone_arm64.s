#include "textflag.h"

// CLONE_THEN(entry) is the body of a func(flags, stack uintptr) (pid
// uintptr, errno uintptr): clone(2) with the child on stack, sharing the
// caller's memory and thread pointer; the child calls entry and never
// returns here. The same contract as clone_amd64.s. arm64's clone takes
// (flags, stack, parent_tid, tls, child_tid); the last three are 0.
#define CLONE_THEN(entry) \
	MOVD	flags+0(FP), R0; \
	MOVD	stack+8(FP), R1; \
	MOVD	ZR, R2; \
	MOVD	ZR, R3; \
	MOVD	ZR, R4; \
	MOVD	$220, R8; /* SYS_clone */ \
	SVC; \
	CMP	ZR, R0; \
	BEQ	child; \
	CMN	$4095, R0; \
	BCC	ok; \
	NEG	R0, R0; \
	MOVD	ZR, pid+16(FP); \
	MOVD	R0, errno+24(FP); \
	RET; \
ok: \
	MOVD	R0, pid+16(FP); \
	MOVD	ZR, errno+24(FP); \
	RET; \
child: \
	BL	entry(SB); \
	MOVD	$125, R0; \
	MOVD	$94, R8; /* SYS_exit_group */ \
	SVC; \
	UNDEF

// cloneInit and clonePayload are two functions, not one with the entry as
// an argument, so that the linker's check of nosplit stacks sees no cycle.

// func cloneInit(flags, stack uintptr) (pid uintptr, errno uintptr)
TEXT ·cloneInit(SB),NOSPLIT|NOFRAME,$0-32
	CLONE_THEN(·childEntry)

// func clonePayload(flags, stack uintptr) (pid uintptr, errno uintptr)
TEXT ·clonePayload(SB),NOSPLIT|NOFRAME,$0-32
	CLONE_THEN(·payloadEntry)

// func cloneOuter(flags, stack uintptr) (pid uintptr, errno uintptr)
TEXT ·cloneOuter(SB),NOSPLIT|NOFRAME,$0-32
	CLONE_THEN(·outerEntry)

// func cloneInner(flags, stack uintptr) (pid uintptr, errno uintptr)
TEXT ·cloneInner(SB),NOSPLIT|NOFRAME,$0-32
	CLONE_THEN(·innerEntry)

// func cloneJoin(flags, stack uintptr) (pid uintptr, errno uintptr)
//
// The joiner: see clone_amd64.s.
TEXT ·cloneJoin(SB),NOSPLIT|NOFRAME,$0-32
	MOVD	flags+0(FP), R0
	MOVD	stack+8(FP), R1
	MOVD	ZR, R2
	MOVD	ZR, R3
	MOVD	ZR, R4
	MOVD	$220, R8 // SYS_clone
	SVC
	CMP	ZR, R0
	BEQ	joiner
	CMN	$4095, R0
	BCC	ok
	NEG	R0, R0
	MOVD	ZR, pid+16(FP)
	MOVD	R0, errno+24(FP)
	RET
ok:
	MOVD	R0, pid+16(FP)
	MOVD	ZR, errno+24(FP)
	RET
joiner:
	BL	·joinEntry(SB)
	MOVD	·hopFlags(SB), R0
	CBZ	R0, pid1
	MOVD	·hopTop(SB), R1
	MOVD	ZR, R2
	MOVD	ZR, R3
	MOVD	ZR, R4
	MOVD	$220, R8 // SYS_clone
	SVC
	CBZ	R0, pid1
	CMN	$4095, R0
	BCS	failed
	MOVD	R0, ·hopPID(SB)
	B	done
pid1:
	MOVD	·pid1Flags(SB), R0
	MOVD	·pid1Top(SB), R1
	MOVD	$·pid1FD(SB), R2 // CLONE_PIDFD's
	MOVD	ZR, R3
	MOVD	ZR, R4
	MOVD	$220, R8 // SYS_clone
	SVC
	CBZ	R0, init
	CMN	$4095, R0
	BCS	failed
	MOVD	R0, ·joinedPID(SB)
done:
	MOVD	ZR, R0
	MOVD	$94, R8 // SYS_exit_group
	SVC
	UNDEF
failed:
	NEG	R0, R0
	MOVD	R0, ·joinErrno(SB)
	MOVD	$125, R0
	MOVD	$94, R8 // SYS_exit_group
	SVC
	UNDEF
init:
	BL	·childEntry(SB)
	MOVD	$125, R0
	MOVD	$94, R8 // SYS_exit_group
	SVC
	UNDEF
