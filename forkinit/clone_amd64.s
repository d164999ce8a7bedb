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
