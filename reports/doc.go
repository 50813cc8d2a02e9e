// Package reports turns a Ginkgo run into kvmspec's reports: JUnit XML for
// CI systems, a JSON document for tools (nightly comparisons, the HTML
// report) and a one-screen summary for people.
//
// The model is Run: FromGinkgo builds it from the types.Report a
// ReportAfterSuite node receives, plus the run's Meta (settings, host facts,
// backend capabilities). Every It spec of every backend is one Case; specs
// the filters deselected are only counted. Suite-level failures become
// failing cases of area "suite", so a broken setup never reads as green.
//
// # Case identity
//
// The spec tree is Describe(backend) > Describe(area) > … > It. A case's
// Backend comes from its "backend:<name>" label, its Area from the first
// area label (see taxonomy.IsArea), its Name from the container texts below those
// two and the It text, joined with " / ", and its ID is Area + "/" + Name:
// "smoke/pio out [cpl3]", "smoke/exceptions / #UD [cpl0]". IDs must be
// unique per backend (Validate); host profiles match deviations on them.
//
// # report.json, schema_version 2
//
// Field names are lower_snake_case; optional fields are omitted when empty.
// Times are RFC 3339; durations are integer nanoseconds.
//
//	{
//	  "schema_version": 2,
//	  "meta": {
//	    "version": "0.1.0",             kvmspec version
//	    "backends": ["kvm", "emu"],     backends selected, in order
//	    "seed": 1700000000,             Ginkgo random seed
//	    "label_filter": "smoke",        optional
//	    "focus": "pio",                 optional
//	    "strict": true,                 optional: profiles ignored
//	    "skip": "slow",                 optional
//	    "profile": "pvm",               optional: host profile applied
//	    "profile_file": "board.json",   optional: --profile-file it came from
//	    "deviations": 5,                optional: known deviations it lists
//	    "params": {"dirtylog.mem": "64M"},  optional: --param values
//	    "host": [{"name": "host.kernel", "value": "6.18.44"}, …],
//	    "caps": {"kvm": [{"name": "pmu", "supported": false, "detail": "kvm.enable_pmu=N"}]},
//	    "started": "2026-11-22T10:00:00Z",
//	    "finished": "2026-11-22T10:01:00Z",
//	    "report_dir": "reports/out",    optional
//	    "platform": "arm64",            optional: made on another platform, backends renamed (kvm → kvm-arm64)
//	    "platforms": [{                 optional: a merge of runs of several platforms (MergePlatforms)
//	      "name": "arm64", "arch": "arm64", "source": "reports/out/arm64",
//	      "backends": ["kvm-arm64", "emu-arm64"],
//	      "meta": {…},                  the run's own meta, as above
//	      "filtered": 3,
//	      "incomplete": "…", "skipped": "…", "failed": "…",   optional: how it ended without a full run
//	      "counts": {"total": 30, "passed": 15, "failed": 0, "skipped": 15, "deviations": 0, "filtered": 3}
//	    }]
//	  },
//	  "cases": [{
//	    "backend": "kvm",
//	    "area": "smoke",
//	    "name": "pio out [cpl3]",
//	    "id": "smoke/pio out [cpl3]",
//	    "state": "passed",              passed failed skipped deviation timedout panicked interrupted aborted
//	    "message": "…",                 failure message or skip reason
//	    "location": "suites/smoke/pio.go:42",
//	    "failure_location": "…",        failures only
//	    "failure": "…",                 failures and known deviations that ran: full text (panic, stack, steps)
//	    "started": "…",
//	    "duration_ns": 1234567,
//	    "labels": ["backend:kvm", "smoke", "cpl3"],
//	    "report_entries": [{"name": "host health", "value": "host kernel ok; …"}],
//	    "perf": [{"experiment": "pio", "name": "exit round trip", "units": "ns",
//	              "n": 3, "min": 1, "median": 2, "mean": 2, "max": 3, "stddev": 0.8,
//	              "samples": [2, 1, 3]}],   every value in the order measured (version 2 on)
//	    "output": "…",                  GinkgoWriter and captured stdout/stderr
//	    "deviation": {"id": "pvm-cpl0-int3", "profile": "pvm", "reason": "…", "run": true}
//	                                    optional: the host profile's deviation that judged the case
//	  }],
//	  "filtered": 12,                   specs deselected by the filters
//	  "problems": ["duplicate case ID …"],
//	  "incomplete": "incomplete: the run started at … did not finish"   only while a run runs, or when it died
//	}
//
// Perf units are the gmeasure units of value measurements; duration
// measurements are converted to "ns".
//
// Renaming or re-typing a field, adding a state, or a change comparisons
// must know of (version 2: samples) bumps schema_version. ReadJSON reads
// every version up to SchemaVersion (version 1 reports compare as "not
// enough data") and refuses later ones, and documents without meta or
// cases: those are not kvmspec reports.
package reports
