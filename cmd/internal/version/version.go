// Package version says which build of a command is running, from what the Go
// toolchain recorded in the binary (runtime/debug.ReadBuildInfo). It serves
// the commands under cmd/ only.
package version

import (
	"debug/buildinfo"
	"runtime"
	"runtime/debug"
	"strings"
)

// String returns the line that the command name prints for --version: the
// module's version, the commit it was built from and whether the checkout
// had changes (when go build recorded them: not under go run, nor without
// git), the Go version, and the system it was built for:
//
//	peercred v0.1.0, go1.26.8 linux/amd64
//	peercred (devel), commit 1232e88c0f3a53c3d1ac8f6b3b0b2ad1e8c0d6a9 (modified), go1.26.8 linux/amd64
func String(name string) string {
	bi, _ := debug.ReadBuildInfo() // nil if there is none
	return format(name, bi)
}

// OfFile returns the line that the command name built into the executable
// file path prints for --version, read from the file (for tests, which
// compare the two).
func OfFile(name, path string) (string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", err
	}
	return format(name, bi), nil
}

// format is String for the build information bi (nil: none recorded).
func format(name string, bi *debug.BuildInfo) string {
	version, goVersion := "(unknown)", runtime.Version()
	var revision, modified string
	if bi != nil {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
	}
	var b strings.Builder
	b.WriteString(name + " " + version)
	if revision != "" {
		b.WriteString(", commit " + revision)
		if modified == "true" {
			b.WriteString(" (modified)")
		}
	}
	b.WriteString(", " + goVersion + " " + runtime.GOOS + "/" + runtime.GOARCH)
	return b.String()
}
