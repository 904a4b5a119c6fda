/*
 * entry.S - Multiboot header, entry point, GDT/LDT, interrupt stubs and rt_exec for the
 * bt86 guest test kernels.  See rt.h for the runtime's conventions.
 */

#define MB_MAGIC 0x1badb002
#define MB_FLAGS 0x00000003          /* page-align modules, want mem_* and the memory map */

#ifndef HOST
    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
#endif

#ifndef HOST
/* ---- entry ------------------------------------------------------------------------------ */
    .section .text.entry, "ax"
    .globl _start
_start:
    movl $rt_stack_top, %esp
    pushfl                          /* the machine state as the loader left it */
    popl rt_entry_eflags
    cli
    movl %eax, rt_mb_magic
    movl %ebx, rt_mb_info
    movl %cr0, %ecx
    movl %ecx, rt_entry_cr0
    lgdt rt_gdt_ptr
    ljmp $0x08, $1f
1:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    pushl $0x00000002               /* EFLAGS: IF = 0, DF = 0, IOPL = 0, AC = 0 */
    popfl
    movl $0x00000033, %eax          /* CR0 = PE | MP | ET | NE */
    movl %eax, %cr0
    xorl %eax, %eax
    movl %eax, %cr4
    call rt_init
    call test_main
    call tap_done
2:  cli
    hlt
    jmp 2b

/* ---- GDT ------------------------------------------------------------------------------ */
    .data
    .balign 8
    .globl rt_gdt
rt_gdt:
    .quad 0                         /* 0x00 null */
    .quad 0x00cf9b000000ffff        /* 0x08 flat code, readable, accessed */
    .quad 0x00cf93000000ffff        /* 0x10 flat data, writable, accessed */
    .quad 0x00cf9b000000ffff        /* 0x18 second flat code */
    .quad 0xffcf93fff000ffff        /* 0x20 data base 0xfffff000, 4 GiB */
    .quad 0x00cf91000000ffff        /* 0x28 flat data, read-only */
    .quad 0x00cf13000000ffff        /* 0x30 flat data, not present */
    .quad 0x00cf99000000ffff        /* 0x38 flat code, execute-only */
    .quad 0x00cff3000000ffff        /* 0x40 flat data, DPL 3 */
    .quad 0x00cf9f000000ffff        /* 0x48 flat conforming code, readable */
    .quad 0x004093000000ffff        /* 0x50 data, limit 0xffff bytes (base set by rt_init) */
    .quad 0x0040970000000fff        /* 0x58 data, expand-down, limit 0xfff, B = 1 */
    .quad 0x000082000000001f        /* 0x60 LDT, 4 entries (base set by rt_init) */
    .quad 0x0000890000000067        /* 0x68 32-bit TSS, available (base set by rt_init) */
    .quad 0x00cffb000000ffff        /* 0x70 flat code, DPL 3 */
    .fill 17, 8, 0                  /* 0x78..0xf8 spare */
rt_gdt_end:

    .balign 8
    .globl rt_ldt
rt_ldt:
    .quad 0                         /* 0x04: unused */
    .quad 0x0040930000000fff        /* 0x0c data, limit 0xfff (base set by rt_init) */
    .quad 0x00cf9b000000ffff        /* 0x14 flat code */
    .quad 0

    .balign 4
    .globl rt_gdt_ptr
    .word 0
rt_gdt_ptr:
    .word rt_gdt_end - rt_gdt - 1
    .long rt_gdt

/* ---- interrupt stubs ------------------------------------------------------------------- */
/* One stub per vector, 16 bytes apart: push the vector number, jump to the common code. */
    .text
    .balign 16
    .globl rt_stubs
rt_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    pushl $vec
    jmp rt_trap_common
    .set vec, vec + 1
    .endr

rt_trap_common:
    pushal
    pushl %ds
    pushl %es
    pushl %fs
    pushl %gs
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    cld
    pushl %esp
    call rt_trap
    addl $4, %esp
    popl %gs
    popl %fs
    popl %es
    popl %ds
    popal
    testl $4, (%esp)                /* rt_trap left 4 here if there is an error code */
    jnz 1f
    addl $4, %esp
    iretl
1:  addl $8, %esp
    iretl

#endif /* !HOST */

/* ---- rt_exec ----------------------------------------------------------------------------- */
/* void rt_exec(const struct regs *in, struct regs *out, void (*stub)(void)) */
    .text
    .globl rt_exec
rt_exec:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl 20(%esp), %eax             /* in */
    movl 24(%esp), %ecx
    movl %ecx, rt_exec_out
    movl 28(%esp), %ecx
    movl %ecx, rt_exec_stub
    pushfl                          /* keep IF and friends, take CF PF AF ZF SF DF OF */
    andl $~0x0cd5, (%esp)
    movl 28(%eax), %ecx
    andl $0x0cd5, %ecx
    orl %ecx, (%esp)
    movl 4(%eax), %ebx
    movl 8(%eax), %ecx
    movl 12(%eax), %edx
    movl 16(%eax), %esi
    movl 20(%eax), %edi
    movl 24(%eax), %ebp
    movl 0(%eax), %eax
    popfl
    call *rt_exec_stub
    pushfl
    pushl %eax
    movl rt_exec_out, %eax
    popl 0(%eax)
    popl 28(%eax)
    movl %ebx, 4(%eax)
    movl %ecx, 8(%eax)
    movl %edx, 12(%eax)
    movl %esi, 16(%eax)
    movl %edi, 20(%eax)
    movl %ebp, 24(%eax)
    cld
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret

/* ---- data ------------------------------------------------------------------------------- */
    .data
    .balign 4
rt_exec_out:   .long 0
#ifndef HOST
    .globl rt_entry_eflags, rt_entry_cr0
rt_entry_eflags: .long 0
rt_entry_cr0:  .long 0
#endif
rt_exec_stub:  .long 0

#ifndef HOST
    .bss
    .balign 16
    .globl rt_stack_bottom, rt_stack_top
rt_stack_bottom:
    .skip 65536
rt_stack_top:
#endif /* !HOST */

    .section .note.GNU-stack, "", @progbits
