package kvm

// Guest memory access for host code and device models: hv.GuestAccess
// over the VM's slots, with host writes to dirty-logged slots recorded in
// hostDirty (see vm.go's hostWritten and hostWritable, and GetDirtyLog).

// ReadGPA implements hv.GuestMemory.
func (vm *VM) ReadGPA(gpa uint64, b []byte) error { return vm.access.ReadGPA(gpa, b) }

// WriteGPA implements hv.GuestMemory.
func (vm *VM) WriteGPA(gpa uint64, b []byte) error { return vm.access.WriteGPA(gpa, b) }

// Load32 implements hv.GuestMemory.
func (vm *VM) Load32(gpa uint64) (uint32, error) { return vm.access.Load32(gpa) }

// Load64 implements hv.GuestMemory.
func (vm *VM) Load64(gpa uint64) (uint64, error) { return vm.access.Load64(gpa) }

// Store32 implements hv.GuestMemory.
func (vm *VM) Store32(gpa uint64, v uint32) error { return vm.access.Store32(gpa, v) }

// Store64 implements hv.GuestMemory.
func (vm *VM) Store64(gpa uint64, v uint64) error { return vm.access.Store64(gpa, v) }

// CAS32 implements hv.GuestMemory.
func (vm *VM) CAS32(gpa uint64, old, new uint32) (bool, error) { return vm.access.CAS32(gpa, old, new) }

// CAS64 implements hv.GuestMemory.
func (vm *VM) CAS64(gpa uint64, old, new uint64) (bool, error) { return vm.access.CAS64(gpa, old, new) }
