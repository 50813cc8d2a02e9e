package emu

import (
	"errors"

	"golang.org/x/arch/x86/x86asm"
)

// inst is one decoded instruction, resolved once into what its handler
// needs so execution never looks at x86asm values again.
type inst struct {
	fn    func(*cpu, *inst)
	len   uint8
	size  uint8 // operand size in bytes
	ssize uint8 // source size (movzx/movsx), element size (strings, in/out)
	cc    uint8 // condition code or sub-operation
	lock  bool
	cont  bool  // execution always goes on to the next instruction of the block (see block)
	rep   uint8 // 0, repF3, repF2
	a32   bool  // 0x67: 32-bit addressing
	// truncated: the bytes ran out; straddle: the instruction crosses a
	// page and is not cached.
	truncated, straddle bool
	// post: what runBlocks looks at after the instruction besides the
	// attention word (postFuse, postJcc, postLast; set by decodeBlock).
	post           uint8
	pair           uint8 // fused pair kind (postPair; ops_fused.go)
	idx            uint8 // index in its block (runBlocks counts a block's instructions with it)
	dst, src, src2 operand
	op             x86asm.Op
}

const (
	repF3 = 1
	repF2 = 2
)

// inst.post bits.
const (
	// postFuse: a register-only flag producer the next instruction of
	// its block, a conditional jump, follows (runBlocks runs the two as
	// one).
	postFuse = 1 << iota
	// postJcc: a conditional jump, the only instruction inside a block
	// that can move RIP elsewhere than to the next one (runBlocks
	// compares RIP after it alone).
	postJcc
	// postLast: the block's last instruction.
	postLast
	// postPair: with postFuse, in.fn is the handler of the fused pair
	// in.pair (ops_fused.go), which runs the jump too.
	postPair
	// postSkip: with postPair, the pair's handler runs the instruction
	// after the jump too (pairShrX64, pairShrX32).
	postSkip
)

// operand kinds
const (
	kNone = iota
	kReg
	kMem
	kImm
	kCR
	kDR
	kSeg
)

const (
	regNone = 16
	regRIP  = 17
)

const (
	segNone = iota
	segFS
	segGS
)

type operand struct {
	kind  uint8
	reg   uint8 // GPR (0-15) or CR/DR/segment number
	hi    bool  // AH, CH, DH, BH
	base  uint8 // GPR, regNone or regRIP
	index uint8 // GPR or regNone
	scale uint8
	seg   uint8
	disp  int64
	imm   uint64
}

// decodeBytes decodes one instruction. Undecodable bytes give an
// instruction that raises #UD; so do instructions outside the subset.
func decodeBytes(b []byte) *inst {
	in := new(inst)
	decodeInto(in, b)
	return in
}

// decodeInto is decodeBytes into *in.
func decodeInto(in *inst, b []byte) {
	// x86asm does not know VMCALL (0f 01 c1).
	if len(b) >= 3 && b[0] == 0x0f && b[1] == 0x01 && b[2] == 0xc1 {
		*in = inst{fn: opVmcall, len: 3, op: x86asm.Op(0)}
		return
	}
	xi, err := x86asm.Decode(b, 64)
	// x86asm reports most cut-off instructions not as ErrTruncated but as
	// a one-byte Op(0) without an error: with fewer than 15 bytes that
	// may be the end of the bytes rather than an invalid opcode, so the
	// caller fetches more (an instruction at a page's end).
	if err != nil || xi.Op == 0 && len(b) < 15 {
		*in = inst{fn: opUD, len: 1}
		if errors.Is(err, x86asm.ErrTruncated) || err == nil {
			in.truncated = true
		}
		return
	}
	*in = inst{len: uint8(xi.Len), op: xi.Op}
	if !build(in, &xi) {
		*in = inst{fn: opUD, len: uint8(xi.Len), op: xi.Op}
	}
}

// one is in's handler for running it alone: its own, also when in.fn
// is the handler of the fused pair it starts (postPair).
func (in *inst) one() func(*cpu, *inst) {
	if in.pair != pairNone {
		return pairs[in.pair].one
	}
	return in.fn
}

// ccOf extracts the condition code from Jcc/SETcc/CMOVcc opcodes.
func ccOf(xi *x86asm.Inst) uint8 {
	op := xi.Opcode >> 24
	if op == 0x0f {
		return uint8(xi.Opcode>>16) & 0xf
	}
	return uint8(op) & 0xf
}

func gpr(r x86asm.Reg) (n uint8, size uint8, hi bool, ok bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return uint8(r - x86asm.AL), 1, false, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return uint8(r - x86asm.AH), 1, true, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return uint8(r-x86asm.SPB) + 4, 1, false, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return uint8(r - x86asm.AX), 2, false, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return uint8(r - x86asm.EAX), 4, false, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return uint8(r - x86asm.RAX), 8, false, true
	}
	return 0, 0, false, false
}

// conv converts an x86asm argument; size is the register width when the
// argument is a general-purpose register.
func conv(a x86asm.Arg, xi *x86asm.Inst) (o operand, size uint8, ok bool) {
	switch a := a.(type) {
	case x86asm.Reg:
		if n, sz, hi, ok := gpr(a); ok {
			return operand{kind: kReg, reg: n, hi: hi}, sz, true
		}
		switch {
		case a >= x86asm.CR0 && a <= x86asm.CR15:
			return operand{kind: kCR, reg: uint8(a - x86asm.CR0)}, 8, true
		case a >= x86asm.DR0 && a <= x86asm.DR15:
			return operand{kind: kDR, reg: uint8(a - x86asm.DR0)}, 8, true
		case a >= x86asm.ES && a <= x86asm.GS:
			return operand{kind: kSeg, reg: uint8(a - x86asm.ES)}, 2, true
		}
		return o, 0, false
	case x86asm.Mem:
		o = operand{kind: kMem, base: regNone, index: regNone, scale: a.Scale, disp: a.Disp}
		if op := xi.Opcode >> 24; op < 0xa0 || op > 0xa3 {
			// x86asm returns disp32 zero-extended; the CPU sign-extends it.
			o.disp = int64(int32(a.Disp))
		}
		if o.scale == 0 {
			o.scale = 1
		}
		switch a.Segment {
		case x86asm.FS:
			o.seg = segFS
		case x86asm.GS:
			o.seg = segGS
		}
		if a.Base != 0 {
			if a.Base == x86asm.RIP || a.Base == x86asm.EIP {
				o.base = regRIP
			} else if n, _, _, ok := gpr(a.Base); ok {
				o.base = n
			} else {
				return o, 0, false
			}
		}
		if a.Index != 0 {
			n, _, _, ok := gpr(a.Index)
			if !ok {
				return o, 0, false
			}
			o.index = n
		}
		return o, uint8(xi.MemBytes), true
	case x86asm.Imm:
		return operand{kind: kImm, imm: uint64(a)}, 0, true
	case x86asm.Rel:
		return operand{kind: kImm, imm: uint64(int64(a))}, 0, true
	}
	return o, 0, false
}

// build fills in from xi; false means "not in the subset" (#UD).
func build(in *inst, xi *x86asm.Inst) bool {
	var args [3]operand
	var sizes [3]uint8
	n := 0
	for i, a := range xi.Args[:3] {
		if a == nil {
			break
		}
		o, sz, ok := conv(a, xi)
		if !ok {
			return false
		}
		args[i], sizes[i] = o, sz
		n++
	}
	in.dst, in.src, in.src2 = args[0], args[1], args[2]
	for _, p := range xi.Prefix {
		if p == 0 {
			break
		}
		if p&x86asm.PrefixInvalid != 0 {
			return false
		}
		switch p &^ (x86asm.PrefixImplicit | x86asm.PrefixIgnored) {
		case x86asm.PrefixLOCK:
			in.lock = true
		case x86asm.PrefixREP:
			in.rep = repF3
		case x86asm.PrefixREPN:
			in.rep = repF2
		}
	}
	in.a32 = xi.AddrSize == 32
	// Operand size: a register operand's width, else the memory width,
	// else the instruction's data size.
	switch {
	case n > 0 && args[0].kind == kReg:
		in.size = sizes[0]
	case n > 0 && args[0].kind == kMem && sizes[0] != 0:
		in.size = sizes[0]
	case n > 1 && args[1].kind == kReg:
		in.size = sizes[1]
	default:
		in.size = uint8(xi.DataSize / 8)
	}
	if in.size == 0 {
		in.size = 4
	}
	// Immediates are taken at the operand width (64-bit ones are already
	// sign-extended by the decoder).
	for _, o := range []*operand{&in.src, &in.src2} {
		if o.kind == kImm {
			o.imm &= sizeMask[in.size]
		}
	}
	lockable := false
	switch xi.Op {
	case x86asm.ADD, x86asm.OR, x86asm.ADC, x86asm.SBB, x86asm.AND, x86asm.SUB, x86asm.XOR:
		lockable = true
		in.cc, in.fn = aluKinds[xi.Op], opAlu
	case x86asm.CMP, x86asm.TEST:
		in.cc, in.fn = aluKinds[xi.Op], opAlu
	case x86asm.INC:
		lockable, in.fn = true, opInc
	case x86asm.DEC:
		lockable, in.fn = true, opDec
	case x86asm.NEG:
		lockable, in.fn = true, opNeg
	case x86asm.NOT:
		lockable, in.fn = true, opNot
	case x86asm.MUL:
		in.fn = opMul
	case x86asm.IMUL:
		if n == 1 {
			in.fn = opImul1
		} else {
			if n == 2 {
				in.src2 = in.src
				in.src = in.dst
			}
			in.src2.imm &= sizeMask[in.size]
			in.fn = opImulN
		}
	case x86asm.DIV:
		in.fn = opDiv
	case x86asm.IDIV:
		in.fn = opIdiv
	case x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ROL, x86asm.ROR, x86asm.RCL, x86asm.RCR:
		in.cc = shiftKind[xi.Op]
		if in.src.kind == kImm {
			in.src.imm &= 0xff
		}
		in.fn = opShift
	case x86asm.SHLD, x86asm.SHRD:
		in.cc = 0
		if xi.Op == x86asm.SHRD {
			in.cc = 1
		}
		if in.src2.kind == kImm {
			in.src2.imm &= 0xff
		}
		in.fn = opShxd
	case x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC:
		in.cc = map[x86asm.Op]uint8{x86asm.BT: 0, x86asm.BTS: 1, x86asm.BTR: 2, x86asm.BTC: 3}[xi.Op]
		lockable = xi.Op != x86asm.BT
		if in.src.kind == kImm {
			in.src.imm &= 0xff
		}
		in.fn = opBt
	case x86asm.BSF:
		in.fn = opBsf
	case x86asm.BSR:
		in.fn = opBsr
	case x86asm.BSWAP:
		in.fn = opBswap
	case x86asm.MOV:
		switch {
		case in.dst.kind == kCR || in.src.kind == kCR:
			in.fn = opMovCR
		case in.dst.kind == kDR || in.src.kind == kDR:
			in.fn = opMovDR
		case in.dst.kind == kSeg || in.src.kind == kSeg:
			in.fn = opMovSeg
			if in.src.kind == kSeg && in.dst.kind == kMem {
				in.size = 2
			}
		default:
			in.fn = opMov
		}
	case x86asm.MOVZX:
		in.ssize = sizes[1]
		in.fn = opMovzx
	case x86asm.MOVSX, x86asm.MOVSXD:
		in.ssize = sizes[1]
		in.fn = opMovsx
	case x86asm.LEA:
		in.fn = opLea
	case x86asm.XCHG:
		in.fn = opXchg
		lockable = true
	case x86asm.CMPXCHG:
		in.fn = opCmpxchg
		lockable = true
	case x86asm.XADD:
		in.fn = opXadd
		lockable = true
	case x86asm.CMOVA, x86asm.CMOVAE, x86asm.CMOVB, x86asm.CMOVBE, x86asm.CMOVE, x86asm.CMOVG, x86asm.CMOVGE, x86asm.CMOVL,
		x86asm.CMOVLE, x86asm.CMOVNE, x86asm.CMOVNO, x86asm.CMOVNP, x86asm.CMOVNS, x86asm.CMOVO, x86asm.CMOVP, x86asm.CMOVS:
		in.cc = ccOf(xi)
		in.fn = opCmov
	case x86asm.SETA, x86asm.SETAE, x86asm.SETB, x86asm.SETBE, x86asm.SETE, x86asm.SETG, x86asm.SETGE, x86asm.SETL,
		x86asm.SETLE, x86asm.SETNE, x86asm.SETNO, x86asm.SETNP, x86asm.SETNS, x86asm.SETO, x86asm.SETP, x86asm.SETS:
		in.cc = ccOf(xi)
		in.size = 1
		in.fn = opSetcc
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL,
		x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS:
		in.cc = ccOf(xi)
		in.fn = opJcc
	case x86asm.JMP:
		if xi.PCRel != 0 {
			in.fn = opJmpRel
		} else {
			in.size = 8
			in.fn = opJmpInd
		}
	case x86asm.CALL:
		if xi.PCRel != 0 {
			in.fn = opCallRel
		} else {
			in.size = 8
			in.fn = opCallInd
		}
	case x86asm.RET:
		in.fn = opRet
		if n == 1 {
			in.dst.imm &= 0xffff
		}
	case x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		in.cc = map[x86asm.Op]uint8{x86asm.LOOP: 0, x86asm.LOOPE: 1, x86asm.LOOPNE: 2}[xi.Op]
		in.fn = opLoop
	case x86asm.JRCXZ, x86asm.JECXZ:
		in.fn = opJrcxz
	case x86asm.PUSH:
		if xi.DataSize == 16 {
			in.size = 2
		} else {
			in.size = 8
		}
		if in.dst.kind == kImm {
			in.dst.imm &= sizeMask[in.size]
		}
		in.fn = opPush
		if in.dst.kind == kSeg {
			return false
		}
	case x86asm.POP:
		if xi.DataSize == 16 {
			in.size = 2
		} else {
			in.size = 8
		}
		in.fn = opPop
		if in.dst.kind == kSeg {
			return false
		}
	case x86asm.PUSHFQ:
		in.fn = opPushf
	case x86asm.POPFQ:
		in.fn = opPopf
	case x86asm.LEAVE:
		in.fn = opLeave
	case x86asm.CBW, x86asm.CWDE, x86asm.CDQE:
		in.fn = opCext
	case x86asm.CWD, x86asm.CDQ, x86asm.CQO:
		in.fn = opCdq
	case x86asm.LAHF:
		in.fn = opLahf
	case x86asm.SAHF:
		in.fn = opSahf
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ:
		in.ssize = strSize[xi.Op]
		in.fn = opMovs
	case x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ:
		in.ssize = strSize[xi.Op]
		in.fn = opStos
	case x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ:
		in.ssize = strSize[xi.Op]
		in.fn = opLods
	case x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ:
		in.ssize = strSize[xi.Op]
		in.fn = opScas
	case x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ:
		in.ssize = strSize[xi.Op]
		in.fn = opCmps
	case x86asm.CLC, x86asm.STC, x86asm.CMC, x86asm.CLD, x86asm.STD:
		in.cc = map[x86asm.Op]uint8{x86asm.CLC: 0, x86asm.STC: 1, x86asm.CMC: 2, x86asm.CLD: 3, x86asm.STD: 4}[xi.Op]
		in.fn = opFlagOp
	case x86asm.CLI:
		in.fn = opCli
	case x86asm.STI:
		in.fn = opSti
	case x86asm.HLT:
		in.fn = opHlt
	case x86asm.INT:
		in.dst.imm &= 0xff
		if xi.Opcode>>24 == 0xcc {
			in.fn = opInt3
		} else {
			in.fn = opInt
		}
	case x86asm.ICEBP:
		in.fn = opIcebp
	case x86asm.UD0, x86asm.UD1, x86asm.UD2:
		in.fn = opUD
	case x86asm.NOP, x86asm.PAUSE, x86asm.MFENCE, x86asm.LFENCE, x86asm.SFENCE,
		x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA:
		in.fn = opNop
	case x86asm.WBINVD, x86asm.INVD:
		in.fn = opPrivNop
	case x86asm.CPUID:
		in.fn = opCpuid
	case x86asm.RDMSR:
		in.fn = opRdmsr
	case x86asm.WRMSR:
		in.fn = opWrmsr
	case x86asm.RDPMC:
		in.fn = opRdpmc
	case x86asm.RDTSC:
		in.fn = opRdtsc
	case x86asm.RDTSCP:
		in.fn = opRdtscp
	case x86asm.LIDT, x86asm.LGDT:
		in.cc = 0
		if xi.Op == x86asm.LGDT {
			in.cc = 1
		}
		in.fn = opLdt
	case x86asm.SIDT, x86asm.SGDT:
		in.cc = 0
		if xi.Op == x86asm.SGDT {
			in.cc = 1
		}
		in.fn = opSdt
	case x86asm.LTR:
		in.size = 2
		in.fn = opLtr
	case x86asm.STR:
		in.fn = opStr
	case x86asm.INVLPG:
		in.fn = opInvlpg
	case x86asm.SWAPGS:
		in.fn = opSwapgs
	case x86asm.IN:
		in.ssize = sizes[0]
		if in.src.kind == kImm {
			in.src.imm &= 0xff
		}
		in.fn = opIn
	case x86asm.OUT:
		in.ssize = sizes[1]
		if in.dst.kind == kImm {
			in.dst.imm &= 0xff
		}
		in.fn = opOut
	case x86asm.INSB, x86asm.INSW, x86asm.INSD:
		in.ssize = strSize[xi.Op]
		in.fn = opIns
	case x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD:
		in.ssize = strSize[xi.Op]
		in.fn = opOuts
	case x86asm.IRETQ:
		in.fn = opIret
	default:
		return false
	}
	if in.lock && (!lockable || in.dst.kind != kMem) {
		return false
	}
	specialize(in, xi.Op)
	in.cont = straightOps[xi.Op&opMask] && in.dst.kind != kCR && in.dst.kind != kDR && in.dst.kind != kSeg &&
		in.src.kind != kCR && in.src.kind != kDR && in.src.kind != kSeg
	if xi.Op == x86asm.XCHG && (in.dst.kind == kMem || in.src.kind == kMem) {
		in.lock = true // XCHG with memory is always locked
		if in.src.kind == kMem {
			in.dst, in.src = in.src, in.dst
		}
	}
	return true
}

// straightOps are the instructions a block may continue after: they only
// compute, load and store (or fault), and never change RIP other than to
// the next instruction (conditional jumps aside, see block), nor
// privilege, paging, RFLAGS.TF/IF or anything else fetching or the loop
// looks at. MOV counts only between GPRs and
// memory (build's check above excludes control, debug and segment
// registers). Everything else ends its block.
var straightOps = func() (t [opMask + 1]bool) {
	for _, o := range []x86asm.Op{
		x86asm.ADD, x86asm.OR, x86asm.ADC, x86asm.SBB, x86asm.AND, x86asm.SUB, x86asm.XOR, x86asm.CMP, x86asm.TEST,
		x86asm.INC, x86asm.DEC, x86asm.NEG, x86asm.NOT, x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV,
		x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ROL, x86asm.ROR, x86asm.RCL, x86asm.RCR, x86asm.SHLD, x86asm.SHRD,
		x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC, x86asm.BSF, x86asm.BSR, x86asm.BSWAP,
		x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD, x86asm.LEA, x86asm.XCHG, x86asm.CMPXCHG, x86asm.XADD,
		x86asm.CMOVA, x86asm.CMOVAE, x86asm.CMOVB, x86asm.CMOVBE, x86asm.CMOVE, x86asm.CMOVG, x86asm.CMOVGE, x86asm.CMOVL,
		x86asm.CMOVLE, x86asm.CMOVNE, x86asm.CMOVNO, x86asm.CMOVNP, x86asm.CMOVNS, x86asm.CMOVO, x86asm.CMOVP, x86asm.CMOVS,
		x86asm.SETA, x86asm.SETAE, x86asm.SETB, x86asm.SETBE, x86asm.SETE, x86asm.SETG, x86asm.SETGE, x86asm.SETL,
		x86asm.SETLE, x86asm.SETNE, x86asm.SETNO, x86asm.SETNP, x86asm.SETNS, x86asm.SETO, x86asm.SETP, x86asm.SETS,
		x86asm.PUSH, x86asm.POP, x86asm.LEAVE, x86asm.CBW, x86asm.CWDE, x86asm.CDQE, x86asm.CWD, x86asm.CDQ, x86asm.CQO,
		x86asm.LAHF, x86asm.SAHF, x86asm.CLC, x86asm.STC, x86asm.CMC, x86asm.CLD, x86asm.STD,
		x86asm.NOP, x86asm.MFENCE, x86asm.LFENCE, x86asm.SFENCE,
		// Conditional jumps change nothing but RIP: a block goes on past
		// one not taken (runBlocks leaves the block when RIP moved).
		x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL,
		x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS,
		x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA,
	} {
		t[o] = true
	}
	return t
}()

// fusable reports whether in is a flag producer that can run with the
// conditional jump after it as one step (runBlocks): an ALU operation or
// shift on registers and immediates only, which can neither fault nor
// touch memory.
func fusable(in *inst) bool {
	if in.lock || in.dst.kind != kReg || in.src2.kind != kNone ||
		(in.src.kind != kReg && in.src.kind != kImm && in.src.kind != kNone) {
		return false
	}
	switch in.op {
	case x86asm.ADD, x86asm.OR, x86asm.ADC, x86asm.SBB, x86asm.AND, x86asm.SUB, x86asm.XOR, x86asm.CMP, x86asm.TEST,
		x86asm.INC, x86asm.DEC, x86asm.NEG, x86asm.SHL, x86asm.SHR, x86asm.SAR:
		return true
	}
	return false
}

// isJcc reports whether in is a conditional jump (opJcc and its forms:
// taken when cond(in.cc), to RIP + in.dst.imm).
func isJcc(in *inst) bool {
	switch in.op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL,
		x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS:
		return true
	}
	return false
}

var strSize = map[x86asm.Op]uint8{
	x86asm.MOVSB: 1, x86asm.MOVSW: 2, x86asm.MOVSD: 4, x86asm.MOVSQ: 8,
	x86asm.STOSB: 1, x86asm.STOSW: 2, x86asm.STOSD: 4, x86asm.STOSQ: 8,
	x86asm.LODSB: 1, x86asm.LODSW: 2, x86asm.LODSD: 4, x86asm.LODSQ: 8,
	x86asm.SCASB: 1, x86asm.SCASW: 2, x86asm.SCASD: 4, x86asm.SCASQ: 8,
	x86asm.CMPSB: 1, x86asm.CMPSW: 2, x86asm.CMPSD: 4, x86asm.CMPSQ: 8,
	x86asm.INSB: 1, x86asm.INSW: 2, x86asm.INSD: 4,
	x86asm.OUTSB: 1, x86asm.OUTSW: 2, x86asm.OUTSD: 4,
}

// shift sub-operations
const (
	shRol = iota
	shRor
	shRcl
	shRcr
	shShl
	shShr
	shSar
)

var shiftKind = map[x86asm.Op]uint8{
	x86asm.ROL: shRol, x86asm.ROR: shRor, x86asm.RCL: shRcl, x86asm.RCR: shRcr,
	x86asm.SHL: shShl, x86asm.SHR: shShr, x86asm.SAR: shSar,
}
