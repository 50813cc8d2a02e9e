package dirtylog

import (
	"fmt"
	"math/bits"
	"strings"
)

// pageSet is a set of page indices of one memslot, stored as the KVM dirty
// bitmap is (bit i of word i/64 is page i), so a harvested bitmap can be
// used as a set without conversion.
type pageSet struct {
	pages uint64
	words []uint64
}

func newPageSet(pages uint64) *pageSet {
	return &pageSet{pages: pages, words: make([]uint64, bitmapWords(pages))}
}

// bitmapWords is the number of 64-bit words a dirty bitmap of pages needs.
func bitmapWords(pages uint64) uint64 { return (pages + 63) / 64 }

func pagesOf(pages uint64, list ...uint64) *pageSet {
	s := newPageSet(pages)
	for _, p := range list {
		s.add(p)
	}
	return s
}

func (s *pageSet) add(p uint64) { s.words[p/64] |= 1 << (p % 64) }

func (s *pageSet) has(p uint64) bool { return s.words[p/64]&(1<<(p%64)) != 0 }

// addWords ORs a bitmap into the set. Bits at or beyond s.pages are kept:
// a backend that sets them is wrong, and the comparison must show it.
func (s *pageSet) addWords(w []uint64) {
	for i := range s.words {
		if i < len(w) {
			s.words[i] |= w[i]
		}
	}
}

func (s *pageSet) union(o *pageSet) *pageSet {
	u := newPageSet(s.pages)
	u.addWords(s.words)
	u.addWords(o.words)
	return u
}

func (s *pageSet) count() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return n
}

func (s *pageSet) clear() { clear(s.words) }

// list returns the pages in ascending order, including stray bits beyond
// s.pages so that they show up in failure messages.
func (s *pageSet) list() []uint64 {
	var out []uint64
	for i, w := range s.words {
		for ; w != 0; w &= w - 1 {
			out = append(out, uint64(i)*64+uint64(bits.TrailingZeros64(w)))
		}
	}
	return out
}

func (s *pageSet) equal(o *pageSet) bool {
	if len(s.words) != len(o.words) {
		return false
	}
	for i := range s.words {
		if s.words[i] != o.words[i] {
			return false
		}
	}
	return true
}

// minus returns the pages of s that o lacks.
func (s *pageSet) minus(o *pageSet) *pageSet {
	d := newPageSet(s.pages)
	for i := range s.words {
		var ow uint64
		if i < len(o.words) {
			ow = o.words[i]
		}
		d.words[i] = s.words[i] &^ ow
	}
	return d
}

// String prints the set as ranges ("0-63 70 128-130"), at most 24 of them,
// so a failure message stays readable for large sets.
func (s *pageSet) String() string {
	l := s.list()
	if len(l) == 0 {
		return "{}"
	}
	var parts []string
	for i := 0; i < len(l); {
		j := i
		for j+1 < len(l) && l[j+1] == l[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprint(l[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", l[i], l[j]))
		}
		i = j + 1
	}
	more := ""
	if len(parts) > 24 {
		more = fmt.Sprintf(" … (%d more ranges)", len(parts)-24)
		parts = parts[:24]
	}
	return fmt.Sprintf("{%s%s} (%d pages)", strings.Join(parts, " "), more, len(l))
}

// diff explains how got differs from want: the pages missing and the pages
// that should not be there.
func diff(got, want *pageSet) string {
	return fmt.Sprintf("missing %v, unexpected %v", want.minus(got), got.minus(want))
}
