package main

// A GDB remote serial protocol client, just enough to read system
// registers (ESR_EL2, FAR_EL2, ...) of every vCPU from QEMU's gdbstub:
// the human monitor prints only the general registers. Connecting stops
// the VM; detaching lets it run on.

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type rsp struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
}

// maxRSPPacket bounds one reply (QEMU's PacketSize is 4 KiB).
const maxRSPPacket = 1 << 20

func dialRSP(path string, timeout time.Duration) (*rsp, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, err
	}
	return &rsp{conn: c, r: bufio.NewReader(c), timeout: timeout}, nil
}

func (g *rsp) Close() error { return g.conn.Close() }

func rspFrame(data string) string {
	var sum byte
	for i := 0; i < len(data); i++ {
		sum += data[i]
	}
	return fmt.Sprintf("$%s#%02x", data, sum)
}

// Do sends one packet and returns the reply's data (escapes undone).
func (g *rsp) Do(data string) (string, error) {
	if err := g.conn.SetDeadline(time.Now().Add(g.timeout)); err != nil {
		return "", err
	}
	if _, err := g.conn.Write([]byte(rspFrame(data))); err != nil {
		return "", err
	}
	for {
		c, err := g.r.ReadByte()
		if err != nil {
			return "", fmt.Errorf("%s: %w", data, err)
		}
		switch c {
		case '+':
			continue
		case '-':
			return "", fmt.Errorf("%s: the stub asked for a resend", data)
		case '$':
		default:
			continue // noise before a packet
		}
		var body []byte
		for {
			c, err := g.r.ReadByte()
			if err != nil {
				return "", fmt.Errorf("%s: %w", data, err)
			}
			if c == '#' {
				break
			}
			if body = append(body, c); len(body) > maxRSPPacket {
				return "", fmt.Errorf("%s: reply over %d bytes", data, maxRSPPacket)
			}
		}
		cs := make([]byte, 2)
		if _, err := g.r.Read(cs[:1]); err != nil {
			return "", err
		}
		if _, err := g.r.Read(cs[1:]); err != nil {
			return "", err
		}
		var sum byte
		for _, b := range body {
			sum += b
		}
		if want := fmt.Sprintf("%02x", sum); !strings.EqualFold(string(cs), want) {
			return "", fmt.Errorf("%s: reply checksum %s, want %s", data, cs, want)
		}
		if _, err := g.conn.Write([]byte("+")); err != nil {
			return "", err
		}
		return rspUnescape(body), nil
	}
}

// rspUnescape undoes the binary escape: '}' then the byte XOR 0x20.
func rspUnescape(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '}' && i+1 < len(b) {
			i++
			out = append(out, b[i]^0x20)
			continue
		}
		out = append(out, b[i])
	}
	return string(out)
}

// maxXfer bounds one qXfer object (QEMU's system-registers.xml: ~60 KiB).
const maxXfer = 4 << 20

// xfer reads a whole qXfer:features object in chunks.
func (g *rsp) xfer(annex string) (string, error) {
	var sb strings.Builder
	for {
		rep, err := g.Do(fmt.Sprintf("qXfer:features:read:%s:%x,%x", annex, sb.Len(), 0xff0))
		if err != nil {
			return "", err
		}
		if rep == "" || (rep[0] != 'm' && rep[0] != 'l') {
			return "", fmt.Errorf("qXfer %s: %q", annex, rep)
		}
		sb.WriteString(rep[1:])
		if sb.Len() > maxXfer {
			return "", fmt.Errorf("qXfer %s: over %d bytes", annex, maxXfer)
		}
		if rep[0] == 'l' {
			return sb.String(), nil
		}
	}
}

var (
	xmlInclude = regexp.MustCompile(`<xi:include href="([^"]+)"`)
	xmlReg     = regexp.MustCompile(`<reg\s[^>]*>`)
	xmlAttr    = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// regNumbers maps register names to the stub's numbers: the target
// description's features in order, each register numbered by its regnum
// or one past the previous.
func regNumbers(target string, feature func(string) (string, error)) (map[string]int, error) {
	next := 0
	nums := map[string]int{}
	add := func(xml string) error {
		for _, tag := range xmlReg.FindAllString(xml, -1) {
			attrs := map[string]string{}
			for _, a := range xmlAttr.FindAllStringSubmatch(tag, -1) {
				attrs[a[1]] = a[2]
			}
			if s, ok := attrs["regnum"]; ok {
				n, err := strconv.Atoi(s)
				if err != nil {
					return fmt.Errorf("regnum %q", s)
				}
				next = n
			}
			if _, dup := nums[attrs["name"]]; !dup {
				nums[attrs["name"]] = next
			}
			next++
		}
		return nil
	}
	if err := add(target); err != nil {
		return nil, err
	}
	for _, m := range xmlInclude.FindAllStringSubmatch(target, -1) {
		x, err := feature(m[1])
		if err != nil {
			return nil, err
		}
		if err := add(x); err != nil {
			return nil, fmt.Errorf("%s: %w", m[1], err)
		}
	}
	return nums, nil
}

// threads lists the stub's threads (one per vCPU).
func (g *rsp) threads() ([]string, error) {
	var ids []string
	q := "qfThreadInfo"
	for range 1024 {
		rep, err := g.Do(q)
		if err != nil {
			return nil, err
		}
		if rep == "l" || rep == "" {
			return ids, nil
		}
		if rep[0] != 'm' {
			return nil, fmt.Errorf("%s: %q", q, rep)
		}
		ids = append(ids, strings.Split(rep[1:], ",")...)
		q = "qsThreadInfo"
	}
	return nil, errors.New("qsThreadInfo: no end")
}

// readReg reads one register of the current thread, little-endian hex.
func (g *rsp) readReg(n int) (uint64, error) {
	rep, err := g.Do(fmt.Sprintf("p%x", n))
	if err != nil {
		return 0, err
	}
	b, err := hex.DecodeString(rep)
	if err != nil || len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("p%x: %q", n, rep)
	}
	var v uint64
	for i := len(b) - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// hangSysregs are the system registers a hang report shows: where EL2
// last took an exception and why, and the state of the guest it runs.
var hangSysregs = []string{"ESR_EL2", "FAR_EL2", "ELR_EL2", "SPSR_EL2", "HPFAR_EL2", "HCR_EL2", "VBAR_EL2",
	"ESR_EL1", "FAR_EL1", "ELR_EL1", "SPSR_EL1", "VBAR_EL1"}

// vcpuSysregs reads hangSysregs of every vCPU through the gdbstub at
// path, then detaches (the VM runs on). Registers the stub does not
// offer are left out.
func vcpuSysregs(path string, timeout time.Duration) ([]string, []map[string]uint64, error) {
	g, err := dialRSP(path, timeout)
	if err != nil {
		return nil, nil, err
	}
	defer g.Close()
	defer g.Do("D")
	if _, err := g.Do("qSupported:multiprocess+;xmlRegisters=aarch64"); err != nil {
		return nil, nil, err
	}
	if _, err := g.Do("?"); err != nil {
		return nil, nil, err
	}
	target, err := g.xfer("target.xml")
	if err != nil {
		return nil, nil, err
	}
	nums, err := regNumbers(target, g.xfer)
	if err != nil {
		return nil, nil, err
	}
	ids, err := g.threads()
	if err != nil {
		return nil, nil, err
	}
	var out []map[string]uint64
	for _, id := range ids {
		if rep, err := g.Do("Hg" + id); err != nil || rep != "OK" {
			return nil, nil, fmt.Errorf("selecting thread %s (Hg): %q %v", id, rep, err)
		}
		regs := map[string]uint64{}
		for _, name := range hangSysregs {
			n, ok := nums[name]
			if !ok {
				continue
			}
			v, err := g.readReg(n)
			if err != nil {
				return nil, nil, fmt.Errorf("thread %s %s: %w", id, name, err)
			}
			regs[name] = v
		}
		out = append(out, regs)
	}
	return ids, out, nil
}
