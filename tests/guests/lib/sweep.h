/*
 * sweep.h - table-driven instruction sweeps for the unprivileged-instruction kernels.
 *
 * A stub is a few instructions ending in `ret` (see STUB below).  sweep_run() calls it
 * through rt_exec() for every combination of EAX in a[], EBX in b[], ECX in c[] and the
 * arithmetic flags in f[], with ESI pointing at a 64-byte scratch buffer (filled with a
 * fixed pattern before every call) and EDI at its middle, EDX = 0x0badf00d, EBP = ~EAX.
 * It hashes what the stub leaves in every register, the flags it leaves (masked by the
 * stub's `fmask`: only architecturally defined flags), and the buffer.  ESI/EDI are hashed
 * as offsets from where they started, so the hash does not depend on the load address.
 *
 * A stub may catch exceptions (CATCH in rt.h); the vector is hashed (and shown in the
 * verbose flags column as (vector + 1) << 20).
 *
 * "sweep=NAME" on the command line runs only the sweep called NAME (blanks as '_').
 *
 * Expected hashes were recorded by running the same stubs natively on real hardware
 * (tests/guests/host/) and confirmed under QEMU.  With "verbose" on the command line each
 * call is printed as a "# " line, so two runs can be diffed to find the first difference.
 */
#ifndef BT86_SWEEP_H
#define BT86_SWEEP_H

#include "rt.h"

/* Defines `void name(void)` running `body` and returning. */
#define STUB(name, body)                                                                 \
    extern void name(void);                                                              \
    asm(".pushsection .text\n.balign 16\n" #name ":\n" body "\n\tret\n.popsection\n");

struct sweep;
/* Computes the mask of defined flags for one input when that depends on the input (shift
 * counts); SWEEP_SKIP leaves the input out entirely (undefined result). */
typedef uint32_t (*sweep_maskfn)(const struct sweep *s, const struct regs *in);
#define SWEEP_SKIP 0xffffffffu

struct sweep {
    const char *name;   /* unique within the kernel: the key of its expected hash */
    void (*stub)(void);
    uint32_t fmask;     /* defined flags after the stub (if maskfn is NULL)   */
    sweep_maskfn maskfn;
    uint32_t arg;       /* for maskfn */
};

/* Every kernel that sweeps defines its expected hashes (recorded on hardware with
 * host/run-native.sh NAME hashes, pasted between the HASHES markers of its source). */
struct sweep_hash {
    const char *name;
    uint32_t hash;
};
extern const struct sweep_hash sweep_hashes[];
extern const unsigned sweep_nhashes;

struct sweep_space {
    const uint32_t *a; unsigned na;   /* EAX */
    const uint32_t *b; unsigned nb;   /* EBX */
    const uint32_t *c; unsigned nc;   /* ECX */
    const uint32_t *f; unsigned nf;   /* EFLAGS (arithmetic flags and DF) */
    /* Optional: fills the scratch buffer from the inputs (after the fixed pattern). */
    void (*prepare)(const struct regs *in);
    /* Optional: adjusts the buffer after the stub ran (masks undefined bits). */
    void (*finish)(void);
};

#define N(x) (sizeof(x) / sizeof((x)[0]))

static uint8_t sweep_buf[64] __attribute__((aligned(64)));

static inline void sweep_fill(void)
{
    for (unsigned i = 0; i < sizeof sweep_buf; i++)
        sweep_buf[i] = (uint8_t)(i * 0x3b + 0x91);
}

static inline uint32_t sweep_one(const struct sweep *s, const struct regs *in, uint32_t h,
                                 const struct sweep_space *sp)
{
    struct regs out;
    uint32_t mask = s->maskfn ? s->maskfn(s, in) : s->fmask;
    if (mask == SWEEP_SKIP)
        return h;
    sweep_fill();
    if (sp->prepare)
        sp->prepare(in);
    rt_last.count = 0;
    rt_exec(in, &out, s->stub);
    if (sp->finish)
        sp->finish();
    uint32_t fl = out.eflags & mask;
    if (rt_last.count) {           /* a stub that catches exceptions saw one */
        h = fnv32(h, 0xfa017000 + rt_last.vector);
        fl |= 0x100000 * (rt_last.vector + 1);
    }
    h = fnv32(h, out.eax);
    h = fnv32(h, out.ebx);
    h = fnv32(h, out.ecx);
    h = fnv32(h, out.edx);
    h = fnv32(h, out.esi - in->esi);
    h = fnv32(h, out.edi - in->edi);
    h = fnv32(h, out.ebp);
    h = fnv32(h, fl);
    for (unsigned i = 0; i < sizeof sweep_buf; i += 4)
        h = fnv32(h, *(uint32_t *)&sweep_buf[i]);
    if (rt_verbose) {
        rt_printf("# %s a=%08x b=%08x c=%08x f=%03x -> a=%08x b=%08x c=%08x d=%08x si%d di%d "
                  "bp=%08x f=%03x m=", s->name, in->eax, in->ebx, in->ecx, in->eflags, out.eax,
                  out.ebx, out.ecx, out.edx, (int)(out.esi - in->esi), (int)(out.edi - in->edi),
                  out.ebp, fl);
        for (unsigned i = 0; i < sizeof sweep_buf; i++)
            rt_printf("%02x", sweep_buf[i]);
        rt_putc('\n');
    }
    return h;
}

/* "sweep=NAME" on the command line (blanks in NAME written as '_') runs only that sweep,
 * for debugging with "verbose". */
static inline int sweep_selected(const char *name)
{
    const char *c = rt_cmdline();
    while (*c && strncmp(c, "sweep=", 6))
        c++;
    if (!*c)
        return 1;
    c += 6;
    for (; *name; name++, c++)
        if (*c != (*name == ' ' ? '_' : *name))
            return 0;
    return *c == 0 || *c == ' ';
}

/* Runs one stub over the space and checks its hash (one TAP line). */
static inline int sweep_run(const struct sweep *s, const struct sweep_space *sp)
{
    if (!sweep_selected(s->name))
        return 1;
    uint32_t h = FNV_INIT;
    struct regs in;
    for (unsigned ia = 0; ia < sp->na; ia++)
        for (unsigned ib = 0; ib < sp->nb; ib++)
            for (unsigned ic = 0; ic < sp->nc; ic++)
                for (unsigned iff = 0; iff < sp->nf; iff++) {
                    in.eax = sp->a[ia];
                    in.ebx = sp->b[ib];
                    in.ecx = sp->c[ic];
                    in.edx = 0x0badf00d;
                    in.esi = (uint32_t)sweep_buf;
                    in.edi = (uint32_t)sweep_buf + 32;
                    in.ebp = ~sp->a[ia];
                    in.eflags = sp->f[iff];
                    h = sweep_one(s, &in, h, sp);
                }
    uint32_t expect = 0;
    for (unsigned i = 0; i < sweep_nhashes; i++)
        if (!strncmp(sweep_hashes[i].name, s->name, 200)) {
            expect = sweep_hashes[i].hash;
            break;
        }
#ifdef HOST
    if (rt_cmdline_has("hashes")) {
        rt_printf("H\t%s\t0x%08x\n", s->name, h);
        return 1;
    }
#endif
    return is(h, expect, "%s", s->name);
}

static inline void sweep_all(const struct sweep *s, unsigned n, const struct sweep_space *sp)
{
    for (unsigned i = 0; i < n; i++)
        sweep_run(&s[i], sp);
}

#endif
