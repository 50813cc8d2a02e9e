package kvm

import "unsafe"

// uffdLayoutTable pairs the mirrors of uffd_types.go with their C sizes
// and offsets, for TestUffdLayoutsMatchHeaders.
var uffdLayoutTable = []layoutEntry{
	{"sizeof uffdio_api", uint64(unsafe.Sizeof(uffdioAPIArg{})), "sizeof(struct uffdio_api)"},
	{"offsetof uffdio_api.ioctls", uint64(unsafe.Offsetof(uffdioAPIArg{}.ioctls)), "offsetof(struct uffdio_api, ioctls)"},
	{"sizeof uffdio_range", uint64(unsafe.Sizeof(uffdioRange{})), "sizeof(struct uffdio_range)"},
	{"sizeof uffdio_register", uint64(unsafe.Sizeof(uffdioRegisterArg{})), "sizeof(struct uffdio_register)"},
	{"offsetof uffdio_register.mode", uint64(unsafe.Offsetof(uffdioRegisterArg{}.mode)), "offsetof(struct uffdio_register, mode)"},
	{"offsetof uffdio_register.ioctls", uint64(unsafe.Offsetof(uffdioRegisterArg{}.ioctls)), "offsetof(struct uffdio_register, ioctls)"},
	{"sizeof uffdio_copy", uint64(unsafe.Sizeof(uffdioCopyArg{})), "sizeof(struct uffdio_copy)"},
	{"offsetof uffdio_copy.mode", uint64(unsafe.Offsetof(uffdioCopyArg{}.mode)), "offsetof(struct uffdio_copy, mode)"},
	{"offsetof uffdio_copy.copy", uint64(unsafe.Offsetof(uffdioCopyArg{}.copy)), "offsetof(struct uffdio_copy, copy)"},
	{"sizeof uffd_msg", uint64(unsafe.Sizeof(uffdMsg{})), "sizeof(struct uffd_msg)"},
	{"uffdMsgSize", uffdMsgSize, "sizeof(struct uffd_msg)"},
	{"offsetof uffd_msg.arg.pagefault.flags", uint64(unsafe.Offsetof(uffdMsg{}.flags)), "offsetof(struct uffd_msg, arg.pagefault.flags)"},
	{"offsetof uffd_msg.arg.pagefault.address", uint64(unsafe.Offsetof(uffdMsg{}.address)), "offsetof(struct uffd_msg, arg.pagefault.address)"},
	{"offsetof uffd_msg.arg.pagefault.feat.ptid", uint64(unsafe.Offsetof(uffdMsg{}.ptid)), "offsetof(struct uffd_msg, arg.pagefault.feat.ptid)"},
}
