package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
)

// profileEnv names a directory into which the daemon writes Go profiles
// of its whole life, a debugging aid for performance work: cpu.pprof
// (from start to SIGTERM) and, at exit, heap.pprof and allocs.pprof. Read
// them with `go tool pprof bin/sendmail dir/cpu.pprof`.
const profileEnv = "POSTHORN_PROFILE"

// startProfile starts the CPU profile when profileEnv is set; the
// function it returns stops it and writes the memory profiles.
func (a *app) startProfile() func() {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		fmt.Fprintln(a.stderr, "profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		fmt.Fprintln(a.stderr, "profile:", err)
		cpu.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		runtime.GC()
		for _, name := range []string{"heap", "allocs"} {
			if f, err := os.Create(filepath.Join(dir, name+".pprof")); err == nil {
				pprof.Lookup(name).WriteTo(f, 0)
				f.Close()
			}
		}
	}
}
