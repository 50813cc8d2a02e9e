package pagereport

// The device's register block: a subset of virtio-mmio version 2 (virtio
// 1.2, 4.2.2) at the same offsets, followed by the balloon's configuration
// space (struct virtio_balloon_config). Control registers are 32 bits wide
// and must be accessed with aligned 4-byte accesses, as virtio-mmio asks;
// any other access to them reads 0 and writes nothing (counted in
// Stats.BadAccesses). Configuration space allows 1, 2 and 4-byte accesses.
//
//	0x000 R  MagicValue        0x74726976 ("virt")
//	0x004 R  Version           2
//	0x008 R  DeviceID          5 (memory balloon)
//	0x00c R  VendorID          0x736d766b ("kvms")
//	0x010 R  DeviceFeatures    32 feature bits selected by DeviceFeaturesSel
//	0x014 W  DeviceFeaturesSel
//	0x020 W  DriverFeatures    32 feature bits selected by DriverFeaturesSel
//	0x024 W  DriverFeaturesSel
//	0x030 W  QueueSel
//	0x034 R  QueueNumMax       0 for every queue but ReportingQueue
//	0x038 W  QueueNum
//	0x044 RW QueueReady        reads back 0 when the device refused the queue
//	0x050 W  QueueNotify       the queue index
//	0x060 R  InterruptStatus   bit 0 used buffer, bit 1 configuration change
//	0x064 W  InterruptACK
//	0x070 RW Status            virtio device status; 0 resets the device
//	0x080 W  QueueDescLow/High (0x084)
//	0x090 W  QueueDriverLow/High (0x094)   the avail ring
//	0x0a0 W  QueueDeviceLow/High (0x0a4)   the used ring
//	0x0fc R  ConfigGeneration  0: the configuration never changes under the driver
//	0x100    config: num_pages (R, 0), actual (RW), free_page_hint_cmd_id (R, 0),
//	         poison_val (RW, used when VIRTIO_BALLOON_F_PAGE_POISON is negotiated)
const (
	RegMagic             = 0x000
	RegVersion           = 0x004
	RegDeviceID          = 0x008
	RegVendorID          = 0x00c
	RegDeviceFeatures    = 0x010
	RegDeviceFeaturesSel = 0x014
	RegDriverFeatures    = 0x020
	RegDriverFeaturesSel = 0x024
	RegQueueSel          = 0x030
	RegQueueNumMax       = 0x034
	RegQueueNum          = 0x038
	RegQueueReady        = 0x044
	RegQueueNotify       = 0x050
	RegInterruptStatus   = 0x060
	RegInterruptACK      = 0x064
	RegStatus            = 0x070
	RegQueueDescLow      = 0x080
	RegQueueDescHigh     = 0x084
	RegQueueDriverLow    = 0x090
	RegQueueDriverHigh   = 0x094
	RegQueueDeviceLow    = 0x0a0
	RegQueueDeviceHigh   = 0x0a4
	RegConfigGeneration  = 0x0fc
	RegConfig            = 0x100

	// Offsets of struct virtio_balloon_config inside the config space.
	ConfigNumPages  = 0x00
	ConfigActual    = 0x04
	ConfigHintCmdID = 0x08
	ConfigPoisonVal = 0x0c
	configSize      = 0x10

	// RegionSize is the size of the MMIO region the device claims.
	RegionSize = 0x200
)

// Identification values.
const (
	MagicValue = 0x74726976 // "virt", little endian
	Version    = 2
	DeviceID   = 5          // VIRTIO_ID_BALLOON
	VendorID   = 0x736d766b // "kvms"
)

// Device status bits (virtio 1.2, 2.1).
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 0x40 // DEVICE_NEEDS_RESET: set by the device when it gave up
	StatusFailed      = 0x80
)

// Interrupt status bits.
const (
	InterruptUsedBuffer   = 1
	InterruptConfigChange = 2
)

// Feature bits.
const (
	// FeaturePagePoison is VIRTIO_BALLOON_F_PAGE_POISON: the driver tells
	// the device the value freed pages hold (config poison_val).
	FeaturePagePoison = 1 << 4
	// FeaturePageReporting is VIRTIO_BALLOON_F_PAGE_REPORTING (bit 5).
	FeaturePageReporting = 1 << 5
	// FeatureVersion1 is VIRTIO_F_VERSION_1 (bit 32): a modern device.
	FeatureVersion1 = 1 << 32

	// Offered is every feature the device offers. It does not offer
	// VIRTIO_BALLOON_F_STATS_VQ (1), VIRTIO_BALLOON_F_FREE_PAGE_HINT (3),
	// VIRTIO_F_INDIRECT_DESC (28) or VIRTIO_F_EVENT_IDX (29).
	Offered = FeaturePagePoison | FeaturePageReporting | FeatureVersion1
)

// Queues. The virtio spec numbers the reporting queue 4 (inflateq 0,
// deflateq 1, statsq 2, free_page_vq 3); queues that do not exist because
// their feature is absent take no transport index in Linux and QEMU, so
// without VIRTIO_BALLOON_F_STATS_VQ and VIRTIO_BALLOON_F_FREE_PAGE_HINT
// the reporting queue is transport queue 2 (getting this wrong is the
// virtio-ccw lost-notification bug). The model has no inflate or deflate
// engine: queues 0 and 1 report QueueNumMax 0 (not available).
const (
	// SpecReportingQueue is the reporting queue's index in the virtio spec.
	SpecReportingQueue = 4
	// ReportingQueue is its transport index with the features this device offers.
	ReportingQueue = 2
	// MinQueueSize is the smallest reporting queue accepted: Linux needs
	// PAGE_REPORTING_CAPACITY (32) entries and fails its probe otherwise.
	MinQueueSize = 32
	// DefaultQueueSize is QueueNumMax unless Config.QueueSize says otherwise.
	DefaultQueueSize = 128
	// MaxQueueSize is the largest split virtqueue (virtio 1.2, 2.7).
	MaxQueueSize = 32768
)

// TransportQueueIndex is the transport index of spec queue spec given the
// negotiated features, or -1 when that queue does not exist: absent queues
// are skipped, as Linux's vm_find_vqs and QEMU's balloon realize do.
func TransportQueueIndex(spec int, features uint64) int {
	const statsVQ, freePageHint = 1 << 1, 1 << 3
	exists := []bool{true, true, features&statsVQ != 0, features&freePageHint != 0, features&FeaturePageReporting != 0}
	if spec < 0 || spec >= len(exists) || !exists[spec] {
		return -1
	}
	idx := 0
	for i := 0; i < spec; i++ {
		if exists[i] {
			idx++
		}
	}
	return idx
}

// Split virtqueue layout (virtio 1.2, 2.7).
const (
	DescSize      = 16 // struct virtq_desc: addr u64, len u32, flags u16, next u16
	DescAlign     = 16
	AvailAlign    = 2
	UsedAlign     = 4
	UsedElemSize  = 8 // struct virtq_used_elem: id u32, len u32
	DescFNext     = 1
	DescFWrite    = 2 // device-writable buffer
	DescFIndirect = 4
	// AvailFNoInterrupt is VIRTQ_AVAIL_F_NO_INTERRUPT.
	AvailFNoInterrupt = 1
)

// AvailSize and UsedSize are the ring sizes for a queue of n entries
// (with the trailing used_event / avail_event word).
func AvailSize(n int) uint64 { return 4 + 2*uint64(n) + 2 }

// UsedSize is the used ring's size for a queue of n entries.
func UsedSize(n int) uint64 { return 4 + UsedElemSize*uint64(n) + 2 }
