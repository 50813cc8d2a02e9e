package kvm

// Constants and struct mirrors of <linux/userfaultfd.h>. The ioctl numbers
// use the generic _IOC encoding, the same on x86-64 and arm64;
// uffd_const_test.go compares every entry of uffdIoctlTable and every
// struct size with the installed header, as const_test.go does for KVM.
const (
	uffdAPI                = 0xaa
	uffdioAPI              = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister         = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdioUnregister       = 0x8010aa01 // _IOR(0xAA, 0x01, struct uffdio_range)
	uffdioWake             = 0x8010aa02 // _IOR(0xAA, 0x02, struct uffdio_range)
	uffdioCopy             = 0xc028aa03 // _IOWR(0xAA, 0x03, struct uffdio_copy)
	userfaultfdIocNew      = 0xaa00     // _IO(0xAA, 0x00), on /dev/userfaultfd
	uffdioCopyBit          = 0x03       // _UFFDIO_COPY: bit of uffdio_register.ioctls
	uffdioWakeBit          = 0x02       // _UFFDIO_WAKE
	uffdRegisterModeMiss   = 1 << 0     // UFFDIO_REGISTER_MODE_MISSING
	uffdEventPagefault     = 0x12       // UFFD_EVENT_PAGEFAULT
	uffdPagefaultFlagWrite = 1 << 0     // UFFD_PAGEFAULT_FLAG_WRITE
	uffdFeatureMissingShm  = 1 << 5     // UFFD_FEATURE_MISSING_SHMEM
	uffdFeatureThreadID    = 1 << 8     // UFFD_FEATURE_THREAD_ID
	uffdUserModeOnly       = 1          // UFFD_USER_MODE_ONLY (userfaultfd(2) flag)
	uffdMsgSize            = 32         // sizeof(struct uffd_msg)
)

// uffdIoctlTable names every constant above for the header check.
var uffdIoctlTable = []ioctlEntry{
	{"UFFD_API", uffdAPI, ""},
	{"UFFDIO_API", uffdioAPI, ""},
	{"UFFDIO_REGISTER", uffdioRegister, ""},
	{"UFFDIO_UNREGISTER", uffdioUnregister, ""},
	{"UFFDIO_WAKE", uffdioWake, ""},
	{"UFFDIO_COPY", uffdioCopy, ""},
	{"USERFAULTFD_IOC_NEW", userfaultfdIocNew, "6.1"},
	{"_UFFDIO_COPY", uffdioCopyBit, ""},
	{"_UFFDIO_WAKE", uffdioWakeBit, ""},
	{"UFFDIO_REGISTER_MODE_MISSING", uffdRegisterModeMiss, ""},
	{"UFFD_EVENT_PAGEFAULT", uffdEventPagefault, ""},
	{"UFFD_PAGEFAULT_FLAG_WRITE", uffdPagefaultFlagWrite, ""},
	{"UFFD_FEATURE_MISSING_SHMEM", uffdFeatureMissingShm, ""},
	{"UFFD_FEATURE_THREAD_ID", uffdFeatureThreadID, ""},
	{"UFFD_USER_MODE_ONLY", uffdUserModeOnly, "5.11"},
}

// uffdioAPIArg mirrors struct uffdio_api.
type uffdioAPIArg struct {
	api      uint64
	features uint64
	ioctls   uint64
}

// uffdioRange mirrors struct uffdio_range.
type uffdioRange struct {
	start uint64
	len   uint64
}

// uffdioRegisterArg mirrors struct uffdio_register.
type uffdioRegisterArg struct {
	rng    uffdioRange
	mode   uint64
	ioctls uint64
}

// uffdioCopyArg mirrors struct uffdio_copy.
type uffdioCopyArg struct {
	dst  uint64
	src  uint64
	len  uint64
	mode uint64
	copy int64
}

// uffdMsg mirrors struct uffd_msg with the pagefault member of its union,
// the only event a MISSING-mode registration without extra features sends.
type uffdMsg struct {
	event     uint8
	reserved1 uint8
	reserved2 uint16
	reserved3 uint32
	flags     uint64 // arg.pagefault.flags
	address   uint64 // arg.pagefault.address
	ptid      uint32 // arg.pagefault.feat.ptid
	_         uint32
}
