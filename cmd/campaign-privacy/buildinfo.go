package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// buildInfo is what `version` prints, read from the binary itself
// (runtime/debug.ReadBuildInfo): the module version, the VCS revision and
// commit time the Go toolchain stamped, whether the tree was modified,
// and the Go version.
type buildInfo struct {
	Version, Revision, Time, GoVersion string
	Dirty                              bool
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: "unknown", Time: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = info.GoVersion
	if v := info.Main.Version; v != "" && v != "(devel)" {
		b.Version = v
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Dirty = s.Value == "true"
		}
	}
	return b
}

func (b buildInfo) write(w io.Writer) {
	fmt.Fprintf(w, "campaign-privacy %s\nrevision %s\ncommit time %s\ndirty %t\ngo %s\n", b.Version, b.Revision, b.Time, b.Dirty, b.GoVersion)
}
