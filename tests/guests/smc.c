/*
 * smc - self-modifying code.
 *
 * Code that has already run is overwritten and run again; it must behave as the new bytes
 * say.  The SDM (vol. 3, "Handling Self- and Cross-Modifying Code") lets P6 and later
 * processors detect the store by themselves; only the Intel486 needed a jump after it.  Both
 * forms are tested: with a jmp after the store, and with the store directly followed by the
 * modified instruction.
 *
 *  - a store to an immediate in the same page as the writer (with jmp), run before and after;
 *  - a store into another page (a function in a page of its own);
 *  - the store changes the immediate of the very next instruction (no jmp);
 *  - a loop that patches an instruction of its own body on every iteration;
 *  - an opcode replaced (inc -> dec), a jump displacement changed, an instruction replaced
 *    by one of another length (with nops);
 *  - a whole function copied over another one with rep movsb, then called;
 *  - code generated into a data buffer, run, regenerated and run again;
 *  - an instruction that overwrites itself (its new form runs on the next pass).
 */
#include "rt.h"

/* ---- page A: writers and targets in the same page ----------------------------------------- */
asm(".pushsection .text.smc_a, \"ax\"\n"
    ".balign 4096\n"
    /* uint64_t-ish: returns old in EAX, new in EDX */
    ".globl same_page\n"
    "same_page:\n"
    "\tcall sp_target\n"
    "\tmovl %eax, %ecx\n"
    "\tmovl 4(%esp), %eax\n"
    "\tmovl %eax, sp_target + 1\n"          /* mov $imm32, %eax: the immediate */
    "\tjmp 1f\n"
    "1:\tcall sp_target\n"
    "\tmovl %eax, %edx\n"
    "\tmovl %ecx, %eax\n"
    "\tret\n"
    "sp_target:\n"
    "\tmovl $0x11111111, %eax\n"
    "\tret\n"

    /* the next instruction's immediate, no jump in between; run twice */
    ".globl next_insn\n"
    "next_insn:\n"
    "\tmovl 4(%esp), %ecx\n"
    "\tmovl %ecx, 1f + 1\n"
    "1:\tmovl $0x33333333, %eax\n"
    "\tret\n"

    /* a loop patching its own body: each pass adds the pass number (patched into add's imm) */
    ".globl patch_loop\n"
    "patch_loop:\n"
    "\tpush %ebx\n"
    "\txorl %eax, %eax\n"
    "\tmovl $1, %ecx\n"
    "2:\tmovl %ecx, 3f + 1\n"                /* patch the imm32 of the add below */
    "3:\taddl $0x7fffffff, %eax\n"          /* opcode 05 imm32 */
    "\tincl %ecx\n"
    "\tcmpl $11, %ecx\n"
    "\tjne 2b\n"
    "\tpop %ebx\n"
    "\tret\n"

    /* opcode replacement: inc <-> dec */
    ".globl inc_or_dec\n"
    "inc_or_dec:\n"
    "\tmovl 4(%esp), %eax\n"
    "4:\tincl %eax\n"
    "\tret\n"
    ".globl inc_or_dec_op\n"
    ".set inc_or_dec_op, 4b\n"

    /* a jump displacement */
    ".globl which_way\n"
    "which_way:\n"
    "5:\tjmp 6f\n"                           /* eb disp8 */
    "\tmovl $1, %eax\n"
    "\tret\n"
    "6:\tmovl $2, %eax\n"
    "\tret\n"
    ".globl which_way_jmp\n"
    ".set which_way_jmp, 5b\n"

    /* an instruction replaced by a shorter one plus nops */
    ".globl reshape\n"
    "reshape:\n"
    "7:\tmovl $0x44444444, %eax\n"          /* 5 bytes: b8 imm32 */
    "\tret\n"
    ".globl reshape_at\n"
    ".set reshape_at, 7b\n"

    /* an instruction that overwrites itself: movl $imm32, abs32 aimed at its own first
     * four bytes (c7 05 ...), which become b8 90 90 90: a `mov $imm32, %eax` on the next
     * pass.  The pass that stores still completes as decoded. */
    ".globl self_overwrite\n"
    "self_overwrite:\n"
    "\tmovl $0xaaaaaaaa, %eax\n"
    "8:\tmovl $0x909090b8, 8b\n"           /* 10 bytes; after the store: b8 90 90 90 + rest */
    "\tret\n"
    ".globl self_overwrite_at\n"
    ".set self_overwrite_at, 8b\n"
    ".popsection\n");

/* ---- page B: a function alone in its page, patched from page A's caller (C) ------------------ */
asm(".pushsection .text.smc_b, \"ax\"\n"
    ".balign 4096\n"
    ".globl other_page\n"
    "other_page:\n"
    "\tmovl $0x55555555, %eax\n"
    "\tret\n"
    ".globl replacement\n"
    "replacement:\n"                         /* copied over other_page with rep movsb */
    "\tmovl 4(%esp), %eax\n"
    "\tshll $4, %eax\n"
    "\tnotl %eax\n"
    "\tret\n"
    ".globl replacement_end\n"
    "replacement_end:\n"
    ".balign 4096\n"
    ".popsection\n");

struct two { uint32_t lo, hi; };
extern uint64_t same_page(uint32_t v);
extern uint32_t next_insn(uint32_t v), patch_loop(void), inc_or_dec(uint32_t v), which_way(void);
extern uint32_t reshape(void), self_overwrite(void), other_page(uint32_t v);
extern uint8_t inc_or_dec_op[], which_way_jmp[], reshape_at[], self_overwrite_at[];
extern uint8_t replacement[], replacement_end[];

static uint8_t jit[4096] __attribute__((aligned(4096)));

static void code_in_data(void)
{
    /* mov $imm32, %eax; ret */
    for (uint32_t round = 0; round < 4; round++) {
        uint32_t v = 0x1000 * round + 7;
        jit[100] = 0xb8;
        memcpy(jit + 101, &v, 4);
        jit[105] = 0xc3;
        uint32_t r = ((uint32_t (*)(void))(jit + 100))();
        is(r, v, "code written into a data page runs (round %u)", round);
    }
    /* the same bytes at another offset, then the first offset reused for different code */
    static const uint8_t add[] = { 0x8b, 0x44, 0x24, 0x04, 0x83, 0xc0, 0x05, 0xc3 };  /* mov eax,[esp+4]; add eax,5; ret */
    memcpy(jit + 100, add, sizeof add);
    uint32_t r = ((uint32_t (*)(uint32_t))(jit + 100))(10);
    is(r, 15, "different code over the same data-page bytes");
}

void test_main(void)
{
    uint64_t r = same_page(0x22222222);
    is((uint32_t)r, 0x11111111, "same page: the original immediate ran first");
    is((uint32_t)(r >> 32), 0x22222222, "same page: the patched immediate runs after a jmp");
    r = same_page(0x12345678);
    ok((uint32_t)r == 0x22222222 && (uint32_t)(r >> 32) == 0x12345678, "same page: patched again");

    is(next_insn(0x44444444), 0x44444444, "store to the next instruction's immediate, no jmp");
    is(next_insn(0x55555555), 0x55555555, "store to the next instruction's immediate, again");
    is(next_insn(0x66666666), 0x66666666, "store to the next instruction's immediate, a third time");

    is(patch_loop(), 55, "a loop patching an immediate in its own body on each pass");
    is(patch_loop(), 55, "the same loop again (it starts from its last patched state)");

    is(inc_or_dec(10), 11, "inc before patching");
    inc_or_dec_op[0] = 0x48;      /* dec %eax */
    is(inc_or_dec(10), 9, "opcode patched: inc -> dec");
    inc_or_dec_op[0] = 0x40;
    is(inc_or_dec(10), 11, "opcode patched back");

    is(which_way(), 2, "jmp over");
    which_way_jmp[1] = 0;         /* jmp to the next instruction */
    is(which_way(), 1, "jump displacement patched to 0");
    which_way_jmp[1] = 6;
    is(which_way(), 2, "jump displacement patched back");

    is(reshape(), 0x44444444, "5-byte mov before reshaping");
    static const uint8_t shorter[5] = { 0x31, 0xc0, 0x40, 0x90, 0x90 };   /* xor eax,eax; inc eax; nop; nop */
    memcpy(reshape_at, shorter, 5);
    is(reshape(), 1, "replaced by a 2-byte and a 1-byte instruction and nops");

    is(self_overwrite(), 0xaaaaaaaa, "self-overwriting instruction, first pass");
    /* after its store the instruction reads: b8 90 90 90 <old bytes 4..9> */
    uint8_t now[10];
    memcpy(now, self_overwrite_at, 10);
    ok(now[0] == 0xb8 && now[1] == 0x90 && now[2] == 0x90 && now[3] == 0x90,
       "the instruction overwrote its own first bytes");
    /* second pass: b8 90 90 90 xx = mov $0xxx909090, %eax, then the rest as code; make the
     * rest harmless first (nops up to the ret) */
    for (unsigned i = 5; i < 10; i++)
        self_overwrite_at[i] = 0x90;
    self_overwrite_at[4] = 0x00;
    is(self_overwrite(), 0x00909090, "second pass runs the rewritten instruction");

    is(other_page(3), 0x55555555, "other page before the copy");
    uint32_t n = replacement_end - replacement;
    uint32_t s = (uint32_t)replacement, d = (uint32_t)other_page, c = n;
    asm volatile("cld; rep movsb" : "+S"(s), "+D"(d), "+c"(c) :: "memory");
    is(other_page(3), ~(3u << 4), "a function copied over another with rep movsb (other page)");
    is(other_page(0x100), ~(0x100u << 4), "and again with another argument");

    code_in_data();
}
