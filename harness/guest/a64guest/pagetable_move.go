package a64guest

import "fmt"

// MoveLeafTable copies the last-level table that holds va's page
// descriptor to the granule at gpa and points the entry above it at the
// copy, keeping that entry's other bits; it returns the guest-physical
// address of va's descriptor in the copy. Page-fault specs use it to put
// the stage-1 walk's last step in a memslot of its own, as the kernel's
// page_fault_test keeps its page tables in their own slot: read-only,
// dirty-logged, behind userfaultfd or (once the slot is deleted)
// unbacked. va must be mapped by a page; gpa must be granule-aligned and
// writable through the tables' Memory now. The old table is left unused.
func (pt *PageTables) MoveLeafTable(va, gpa uint64) (uint64, error) {
	m := pt.Mode
	gran := m.Granule.Size()
	if gpa%gran != 0 || gpa >= m.PALimit() {
		return 0, fmt.Errorf("a64guest: move the table of %#x to %#x: not %v-aligned below the PA limit %#x", va, gpa, m.Granule, m.PALimit())
	}
	steps, err := pt.Walk(va)
	if err != nil {
		return 0, err
	}
	leaf := steps[len(steps)-1]
	switch {
	case leaf.Level != 3 || leaf.Desc&DescValid == 0:
		return 0, fmt.Errorf("a64guest: move the table of %#x: not mapped by a page", va)
	case len(steps) < 2:
		return 0, fmt.Errorf("a64guest: move the table of %#x: %v starts its walks at level 3, the root table", va, m)
	}
	parent := steps[len(steps)-2]
	old := m.oa(parent.Desc, parent.Level)
	table := make([]byte, gran)
	if err := pt.mem.ReadGPA(old, table); err != nil {
		return 0, fmt.Errorf("a64guest: move the table of %#x: read %#x: %w", va, old, err)
	}
	if err := pt.mem.WriteGPA(gpa, table); err != nil {
		return 0, fmt.Errorf("a64guest: move the table of %#x: write %#x: %w", va, gpa, err)
	}
	if err := write64(pt.mem, parent.EntryGPA, parent.Desc&^descOAMask|m.tableDesc(gpa)); err != nil {
		return 0, err
	}
	return gpa + (leaf.EntryGPA - old), nil
}
