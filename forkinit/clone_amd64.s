#include "textflag.h"

// CLONE_THEN(entry) is the body of a func(flags, stack uintptr) (pid
// uintptr, errno uintptr): clone(2) with the child on stack, sharing the
// caller's memory and thread pointer; the child calls entry and never
// returns here.
#define CLONE_THEN(entry) \
	MOVQ	flags+0(FP), DI; \
	MOVQ	stack+8(FP), SI; \
	XORQ	DX, DX; \
	XORQ	R10, R10; \
	XORQ	R8, R8; \
	MOVQ	$56, AX; /* SYS_clone */ \
	SYSCALL; \
	CMPQ	AX, $0; \
	JEQ	child; \
	CMPQ	AX, $0xfffffffffffff001; \
	JLS	ok; \
	NEGQ	AX; \
	MOVQ	$0, pid+16(FP); \
	MOVQ	AX, errno+24(FP); \
	RET; \
ok: \
	MOVQ	AX, pid+16(FP); \
	MOVQ	$0, errno+24(FP); \
	RET; \
child: \
	CALL	entry(SB); \
	MOVQ	$125, DI; \
	MOVL	$231, AX; /* SYS_exit_group */ \
	SYSCALL; \
	INT	$3

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
// The joiner (join.go): a child on stack that calls joinEntry, which
// enters the namespaces (and exits on a failure); then, when hopFlags is
// set, it clones the hop on hopTop, which goes on as the joiner would.
// Either clones pid 1 with pid1Flags on pid1Top, its pidfd (CLONE_PIDFD)
// going to pid1FD, stores its pid in joinedPID (the hop's in hopPID) and
// exits; an errno of these clones goes to joinErrno. In assembly, not Go, so that the linker's count of
// nosplit frames sees pid 1 start on this stack, as from cloneInit.
TEXT ·cloneJoin(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	flags+0(FP), DI
	MOVQ	stack+8(FP), SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	MOVQ	$56, AX // SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	joiner
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	NEGQ	AX
	MOVQ	$0, pid+16(FP)
	MOVQ	AX, errno+24(FP)
	RET
ok:
	MOVQ	AX, pid+16(FP)
	MOVQ	$0, errno+24(FP)
	RET
joiner:
	CALL	·joinEntry(SB)
	MOVQ	·hopFlags(SB), DI
	CMPQ	DI, $0
	JEQ	pid1
	MOVQ	·hopTop(SB), SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	MOVQ	$56, AX // SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	pid1
	CMPQ	AX, $0xfffffffffffff001
	JHI	failed
	MOVQ	AX, ·hopPID(SB)
	JMP	done
pid1:
	MOVQ	·pid1Flags(SB), DI
	MOVQ	·pid1Top(SB), SI
	LEAQ	·pid1FD(SB), DX // CLONE_PIDFD's
	XORQ	R10, R10
	XORQ	R8, R8
	MOVQ	$56, AX // SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	init
	CMPQ	AX, $0xfffffffffffff001
	JHI	failed
	MOVQ	AX, ·joinedPID(SB)
done:
	MOVQ	$0, DI
	MOVL	$231, AX // SYS_exit_group
	SYSCALL
	INT	$3
failed:
	NEGQ	AX
	MOVQ	AX, ·joinErrno(SB)
	MOVQ	$125, DI
	MOVL	$231, AX // SYS_exit_group
	SYSCALL
	INT	$3
init:
	CALL	·childEntry(SB)
	MOVQ	$125, DI
	MOVL	$231, AX // SYS_exit_group
	SYSCALL
	INT	$3
