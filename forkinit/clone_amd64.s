#include "textflag.h"

// func cloneInit(flags, stack uintptr) (pid uintptr, errno uintptr)
//
// clone(2) with the child on a stack of its own, sharing the caller's
// memory and thread pointer; the child runs childEntry and never returns
// here. cloneInit and clonePayload are two functions so that the linker's
// check of nosplit stacks sees no cycle.
TEXT ·cloneInit(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	flags+0(FP), DI
	MOVQ	stack+8(FP), SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	MOVQ	$56, AX // SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
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
child:
	CALL	·childEntry(SB)
	MOVQ	$125, DI
	MOVL	$231, AX // SYS_exit_group
	SYSCALL
	INT	$3

// func clonePayload(flags, stack uintptr) (pid uintptr, errno uintptr)
//
// The same for the payload's process, which runs payloadEntry.
TEXT ·clonePayload(SB),NOSPLIT|NOFRAME,$0-32
	MOVQ	flags+0(FP), DI
	MOVQ	stack+8(FP), SI
	XORQ	DX, DX
	XORQ	R10, R10
	XORQ	R8, R8
	MOVQ	$56, AX // SYS_clone
	SYSCALL
	CMPQ	AX, $0
	JEQ	child
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
child:
	CALL	·payloadEntry(SB)
	MOVQ	$125, DI
	MOVL	$231, AX // SYS_exit_group
	SYSCALL
	INT	$3
