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
