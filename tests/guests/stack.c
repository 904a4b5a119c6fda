/*
 * stack - the stack and control transfers.
 *
 * push/pop of registers, immediates and memory (push esp pushes the old ESP; pop esp;
 * pop [esp+4] computes the address after incrementing ESP; push [esp+4] before
 * decrementing), 16-bit push/pop (0x66), pushf/popf and pushfw, pusha/popa (popa skips the
 * ESP slot) and pushaw/popaw, enter with nesting levels 0, 1, 3 (and a level above 31,
 * which is taken mod 32), leave; call rel32 / reg / mem / through a table, ret, ret imm16,
 * jmp reg / mem / table, returns to an address the callee changed, push+ret and call+pop,
 * loop/loopz/loopnz/jecxz and their 16-bit address-size forms (CX), and a recursion 100000
 * calls deep on a 4 MiB stack.
 */
#include "rt.h"

/* Each helper below runs with the registers it is given and returns results in them. */
#define ASMFN(name, body) \
    extern void name(void); \
    asm(".pushsection .text\n.balign 16\n" #name ":\n" body "\n.popsection\n");

static struct regs run(void (*fn)(void), uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx)
{
    struct regs in = { eax, ebx, ecx, edx, 0x51515151, 0xd1d1d1d1, 0xb0b0b0b0, 0 }, out;
    rt_exec(&in, &out, fn);
    return out;
}

/* ---- push / pop ------------------------------------------------------------------------ */
ASMFN(push_esp, "mov %esp, %ecx\n\tpush %esp\n\tpop %eax\n\tsub %eax, %ecx\n\tret")
ASMFN(pop_esp, "mov %esp, %edx\n\tlea -64(%esp), %eax\n\tpush %eax\n\tpop %esp\n\t"
               "mov %esp, %ecx\n\tmov %edx, %esp\n\tsub %ecx, %eax\n\tret")
ASMFN(pop_mem_esp, "push $0x11111111\n\tpush $0x22222222\n\tpush $0x33333333\n\t"
                   "pop 4(%esp)\n\tpop %eax\n\tpop %ebx\n\tret")
ASMFN(push_mem_esp, "push $0x44444444\n\tpush $0x55555555\n\tpush 4(%esp)\n\t"
                    "pop %eax\n\tpop %ebx\n\tpop %ecx\n\tret")
ASMFN(push_imm, "mov %esp, %edx\n\tpush $-2\n\tpush $0x12345678\n\tsub %esp, %edx\n\t"
                "pop %ebx\n\tpop %eax\n\tret")
ASMFN(push16, "mov %esp, %edx\n\tpushw $0x1234\n\tpushw $-3\n\tpush %ax\n\tsub %esp, %edx\n\t"
              "pop %cx\n\tpop %bx\n\tmov $0, %eax\n\tpop %ax\n\tret")
ASMFN(push_pop_mem16, "sub $8, %esp\n\tmovl $0xaaaabbbb, (%esp)\n\tmovl $0xccccdddd, 4(%esp)\n\t"
                      "pushw 4(%esp)\n\tpopw (%esp)\n\tmov (%esp), %eax\n\tadd $8, %esp\n\tret")
ASMFN(pushf16, "mov %esp, %edx\n\tpushfw\n\tsub %esp, %edx\n\tpopw %ax\n\tret")
ASMFN(pusha_layout, "mov %esp, %ebp\n\tpusha\n\t"
                    "mov 0(%esp), %eax\n\tcmp %edi, %eax\n\tjne 1f\n\t"
                    "mov 4(%esp), %eax\n\tcmp %esi, %eax\n\tjne 1f\n\t"
                    "mov 8(%esp), %eax\n\tcmp %ebp, %eax\n\tjne 1f\n\t"
                    "mov 12(%esp), %eax\n\tcmp %ebp, %eax\n\tjne 1f\n\t"      /* ESP before pusha */
                    "mov 16(%esp), %eax\n\tcmp %ebx, %eax\n\tjne 1f\n\t"
                    "mov 20(%esp), %eax\n\tcmp %edx, %eax\n\tjne 1f\n\t"
                    "mov 24(%esp), %eax\n\tcmp %ecx, %eax\n\tjne 1f\n\t"
                    "movl $0xdeadbeef, 12(%esp)\n\t"                              /* ignored by popa */
                    "movl $0x77777777, 28(%esp)\n\t"
                    "popa\n\tsub %esp, %ebp\n\tmov %ebp, %ecx\n\tret\n"
                    "1:\tpopa\n\tmov $0xffffffff, %eax\n\tret")
static uint32_t pw_saved __attribute__((used)), pw_size __attribute__((used));
ASMFN(pushaw_popaw, "mov %esp, %ebp\n\tmov %esp, pw_saved\n\tpushaw\n\tmov %ebp, %edx\n\t"
                    "sub %esp, %edx\n\tmov %edx, pw_size\n\t"
                    "movw $0x1111, 14(%esp)\n\tmovw $0x2222, 4(%esp)\n\tpopaw\n\t"
                    "mov %esp, %ebx\n\tsub pw_saved, %ebx\n\tmov pw_size, %edx\n\tret")

/* ---- enter / leave ---------------------------------------------------------------------- */
static uint32_t display[8];
ASMFN(enter0, "push %ebp\n\tmov %esp, %edx\n\tenter $16, $0\n\tmov %edx, %eax\n\tsub %esp, %eax\n\t"
              "mov %edx, %ecx\n\tsub %ebp, %ecx\n\tleave\n\tsub %esp, %edx\n\tpop %ebp\n\tret")
/* level 3: pushes EBP, then the two frame pointers at [EBP-4] and [EBP-8], then the new
 * frame pointer.  EBP points into `display` so those words are known. */
ASMFN(enter3, "push %ebp\n\tmov %esp, %edx\n\tlea display+16, %ebp\n\tenter $8, $3\n\t"
              "mov 20(%esp), %eax\n\tmov 16(%esp), %ebx\n\tmov 12(%esp), %ecx\n\tmov 8(%esp), %esi\n\t"
              "mov %esp, %edi\n\tsub %edx, %edi\n\t"
              "mov 8(%esp), %edx\n\tsub %ebp, %edx\n\t"   /* EBP = the frame pointer pushed last */
              "leave\n\tpop %ebp\n\tret")
ASMFN(enter1, "push %ebp\n\tmov %esp, %edx\n\tlea display+16, %ebp\n\tenter $4, $1\n\t"
              "mov 8(%esp), %eax\n\tmov 4(%esp), %ebx\n\tmov %ebp, %ecx\n\tsub %esp, %ecx\n\t"
              "mov %esp, %edi\n\tsub %edx, %edi\n\tleave\n\tpop %ebp\n\tret")
ASMFN(enter33, "push %ebp\n\tmov %esp, %edx\n\tlea display+16, %ebp\n\tenter $0, $33\n\t"
               "mov %esp, %edi\n\tsub %edx, %edi\n\tleave\n\tpop %ebp\n\tret")

/* ---- calls, returns and jumps --------------------------------------------------------------- */
ASMFN(callee_ret8, "mov 4(%esp), %eax\n\tadd 8(%esp), %eax\n\tret $8")
ASMFN(call_ret_imm, "mov %esp, %edx\n\tpush $40\n\tpush $2\n\tcall callee_ret8\n\tsub %esp, %edx\n\tret")
ASMFN(target_a, "mov $0xaaaa, %eax\n\tret")
ASMFN(target_b, "mov $0xbbbb, %eax\n\tret")
ASMFN(call_reg, "lea target_a, %ecx\n\tcall *%ecx\n\tret")
ASMFN(call_mem, "call *call_table+4\n\tret")
ASMFN(call_table_idx, "call *call_table(,%ebx,4)\n\tret")
ASMFN(jmp_reg, "lea 1f, %ecx\n\tmov $1, %eax\n\tjmp *%ecx\n\tmov $2, %eax\n1:\tret")
ASMFN(jmp_table_idx, "jmp *jmp_table(,%ebx,4)\n"
                     "10:\tmov $10, %eax\n\tret\n11:\tmov $11, %eax\n\tret\n"
                     "12:\tmov $12, %eax\n\tret\n13:\tmov $13, %eax\n\tret\n"
                     ".pushsection .data\njmp_table: .long 10b, 11b, 12b, 13b\n.popsection")
ASMFN(skipper, "addl $5, (%esp)\n\tret")        /* returns 5 bytes after its call */
ASMFN(ret_changed, "mov $1, %eax\n\tcall skipper\n\tmov $2, %eax\n\tret")  /* mov imm32 = 5 bytes */
ASMFN(push_ret, "push $1f\n\tret\n\tmov $0, %eax\n\tret\n1:\tmov $7, %eax\n\tret")
ASMFN(call_pop, "call 1f\n1:\tpop %eax\n\tsub $1b, %eax\n\tret")
ASMFN(call_no_ret, "mov %esp, %edx\n\tcall 1f\n\tmov $0, %eax\n\tret\n1:\tadd $4, %esp\n\tmov $9, %eax\n\t"
                   "sub %esp, %edx\n\tret")
asm(".pushsection .data\ncall_table: .long target_a, target_b\n.popsection");

/* ---- loops -------------------------------------------------------------------------------------- */
ASMFN(loop_count, "xor %eax, %eax\n1:\tinc %eax\n\tloop 1b\n\tret")
ASMFN(loopz_fn, "xor %eax, %eax\n1:\tinc %eax\n\tcmp %eax, %ebx\n\tloopnz 1b\n\tret")   /* until eax == ebx */
ASMFN(loope_fn, "xor %eax, %eax\n1:\tinc %eax\n\tcmp $0, %edx\n\tloopz 1b\n\tret")      /* while edx == 0 */
ASMFN(jecxz_fn, "mov $1, %eax\n\tjecxz 1f\n\tmov $2, %eax\n1:\tret")
ASMFN(loopw_fn, "xor %eax, %eax\n1:\tinc %eax\n\t.byte 0x67, 0xe2, 0xfc\n\tret")   /* loop using CX */
ASMFN(jcxz_fn, "mov $1, %eax\n\t.byte 0x67, 0xe3, 0x05\n\tmov $2, %eax\n\tret")      /* jcxz: CX only */

/* ---- recursion ------------------------------------------------------------------------------------ */
ASMFN(rec_sum, "test %eax, %eax\n\tjz 1f\n\tpush %eax\n\tdec %eax\n\tcall rec_sum\n\tpop %ecx\n\t"
               "add %ecx, %eax\n1:\tret")
ASMFN(on_big_stack, "mov %esp, %ebx\n\tlea big_stack_top, %esp\n\tcall rec_sum\n\tmov %ebx, %esp\n\tret")
static uint8_t big_stack[4 << 20] __attribute__((aligned(4096), used));
asm(".set big_stack_top, big_stack + (4 << 20)");

void test_main(void)
{
    struct regs r;
    r = run(push_esp, 0, 0, 0, 0);
    is(r.ecx, 0, "push esp pushes ESP as it was before the push");
    r = run(pop_esp, 0, 0, 0, 0);
    is(r.eax, 0, "pop esp loads ESP from the stack (no increment afterwards)");
    r = run(pop_mem_esp, 0, 0, 0, 0);
    is(r.eax, 0x22222222, "pop [esp+4]: the slot below is untouched");
    is(r.ebx, 0x33333333, "pop [esp+4]: address computed after ESP is incremented");
    r = run(push_mem_esp, 0, 0, 0, 0);
    is(r.eax, 0x44444444, "push [esp+4]: address computed before ESP is decremented");
    r = run(push_imm, 0, 0, 0, 0);
    is(r.edx, 8, "push imm8 / imm32 take 4 bytes each");
    is(r.eax, 0xfffffffe, "push imm8 sign-extends");
    is(r.ebx, 0x12345678, "push imm32");
    r = run(push16, 0xabcd9876, 0, 0, 0);
    is(r.edx, 6, "16-bit pushes take 2 bytes each");
    is(r.ecx & 0xffff, 0x9876, "push ax / pop cx");
    is(r.ebx & 0xffff, 0xfffd, "pushw imm8 sign-extends to 16 bits");
    is(r.eax, 0x1234, "pushw imm16 / pop ax");
    r = run(push_pop_mem16, 0, 0, 0, 0);
    is(r.eax, 0xaaaadddd, "pushw m16 / popw m16");
    r = run(pushf16, 0, 0, 0, 0);
    is(r.edx, 2, "pushfw takes 2 bytes");
    r = run(pusha_layout, 0xa0a0a0a0, 0xb0b0b0b, 0xc0c0c0c, 0xd0d0d0d);
    is(r.ecx, 0, "pusha/popa: layout right, ESP restored, ESP slot ignored");
    is(r.eax, 0x77777777, "popa loads EAX from the top slot");
    r = run(pushaw_popaw, 0, 0, 0, 0);
    is(r.edx, 16, "pushaw pushes 8 words");
    is(r.ebx, 0, "popaw restores SP");
    is(r.eax & 0xffff, 0x1111, "popaw loads AX");
    is(r.ebp & 0xffff, 0x2222, "popaw loads BP");

    for (unsigned i = 0; i < 8; i++)
        display[i] = 0xd0000000 + i;
    r = run(enter0, 0, 0, 0, 0);
    is(r.eax, 4 + 16, "enter 16,0: pushes EBP and allocates 16 bytes");
    is(r.ecx, 4, "enter 16,0: EBP = ESP after the push");
    is(r.edx, 0, "leave restores ESP");
    r = run(enter3, 0, 0, 0, 0);
    is(r.eax, (uint32_t)&display[4], "enter 8,3: the old EBP is pushed first");
    is(r.ebx, display[3], "enter 8,3: then [EBP-4]");
    is(r.ecx, display[2], "enter 8,3: then [EBP-8]");
    is(r.edi, (uint32_t)-(4 + 4 + 4 + 4 + 8), "enter 8,3: ESP moved by 4 pushes and 8 bytes");
    is(r.edx, 0, "enter 8,3: the frame pointer pushed last is the new EBP");
    r = run(enter1, 0, 0, 0, 0);
    is(r.eax, (uint32_t)&display[4], "enter 4,1: old EBP");
    is(r.ecx, 4 + 4, "enter 4,1: EBP points at the pushed old EBP slot");
    is(r.edi, (uint32_t)-(4 + 4 + 4), "enter 4,1: two pushes and 4 bytes");
    r = run(enter33, 0, 0, 0, 0);
    is(r.edi, (uint32_t)-(4 + 4), "enter 0,33: level is taken mod 32 (level 1)");

    r = run(call_ret_imm, 0, 0, 0, 0);
    is(r.eax, 42, "call/ret imm16: arguments read");
    is(r.edx, 0, "ret 8 pops the arguments");
    r = run(call_reg, 0, 0, 0, 0);
    is(r.eax, 0xaaaa, "call through a register");
    r = run(call_mem, 0, 0, 0, 0);
    is(r.eax, 0xbbbb, "call through memory");
    r = run(call_table_idx, 0, 0, 0, 0);
    is(r.eax, 0xaaaa, "call through a table, index 0");
    r = run(call_table_idx, 0, 1, 0, 0);
    is(r.eax, 0xbbbb, "call through a table, index 1");
    r = run(jmp_reg, 0, 0, 0, 0);
    is(r.eax, 1, "jmp through a register");
    uint32_t hits = 0;
    for (uint32_t i = 0; i < 4; i++) {
        r = run(jmp_table_idx, 0, i, 0, 0);
        hits += r.eax == 10 + i;
    }
    is(hits, 4, "jmp through a table reaches each target");
    r = run(ret_changed, 0, 0, 0, 0);
    is(r.eax, 1, "ret to a return address the callee changed");
    r = run(push_ret, 0, 0, 0, 0);
    is(r.eax, 7, "push imm; ret jumps to the pushed address");
    r = run(call_pop, 0, 0, 0, 0);
    is(r.eax, 0, "call next; pop gets the address of the next instruction");
    r = run(call_no_ret, 0, 0, 0, 0);
    is(r.eax, 9, "call without a matching ret");
    is(r.edx, 0, "call without a matching ret: stack balanced");

    r = run(loop_count, 0, 0, 5, 0);
    ok(r.eax == 5 && r.ecx == 0, "loop runs ECX times");
    r = run(loopz_fn, 0, 3, 10, 0);
    ok(r.eax == 3 && r.ecx == 7, "loopnz stops when ZF = 1");
    r = run(loopz_fn, 0, 30, 10, 0);
    ok(r.eax == 10 && r.ecx == 0, "loopnz stops when ECX reaches 0");
    r = run(loope_fn, 0, 0, 4, 0);
    ok(r.eax == 4 && r.ecx == 0, "loopz runs while ZF = 1");
    r = run(loope_fn, 0, 0, 4, 1);
    ok(r.eax == 1 && r.ecx == 3, "loopz stops when ZF = 0");
    r = run(jecxz_fn, 0, 0, 0, 0);
    is(r.eax, 1, "jecxz jumps when ECX = 0");
    r = run(jecxz_fn, 0, 0, 0x10000, 0);
    is(r.eax, 2, "jecxz falls through when ECX = 0x10000");
    r = run(loopw_fn, 0, 0, 0xabcd0003, 0);
    ok(r.eax == 3 && r.ecx == 0xabcd0000, "loop with address size 16 counts CX only");
    r = run(jcxz_fn, 0, 0, 0x10000, 0);
    is(r.eax, 1, "jcxz (0x67 e3) jumps when CX = 0, whatever ECX");

    r = run(on_big_stack, 100000, 0, 0, 0);
    is(r.eax, 100000u * 100001u / 2, "recursion 100000 calls deep");
    r = run(on_big_stack, 1000, 0, 0, 0);
    is(r.eax, 500500, "recursion again, 1000 deep");
}
