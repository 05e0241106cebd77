package peercred

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGuessContainerFromCgroup: container runtimes' cgroup names, the
// deepest winning; anything else is no container.
func TestGuessContainerFromCgroup(t *testing.T) {
	id := "4f1d2e3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
	tests := []struct {
		cgroup string
		want   ContainerGuess
	}{
		{"/system.slice/docker-" + id + ".scope", ContainerGuess{"docker", id}},
		{"/docker/" + id, ContainerGuess{"docker", id}},
		{"/docker/notanid", ContainerGuess{}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope", ContainerGuess{"containerd", id}},
		{"/kubepods.slice/kubepods-pod1.slice/crio-" + id + ".scope", ContainerGuess{"cri-o", id}},
		{"/machine.slice/libpod-" + id + ".scope/container", ContainerGuess{"podman", id}},
		{"/lxc.payload.web1", ContainerGuess{"lxc", "web1"}},
		{"/system.slice/docker.service", ContainerGuess{}},
		{"/system.slice/docker-.scope", ContainerGuess{}},
		{"/", ContainerGuess{}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, guessContainer(tt.cgroup)); diff != "" {
			t.Errorf("guessContainer(%q) (-want +got):\n%s", tt.cgroup, diff)
		}
	}
}

// TestUnderCgroupWholeComponents: a cgroup prefix holds the paths beneath
// it, never a sibling that shares its first characters.
func TestUnderCgroupWholeComponents(t *testing.T) {
	tests := []struct {
		c, prefix string
		want      bool
	}{
		{"/system.slice/a.service", "/system.slice", true},
		{"/system.slice", "/system.slice", true},
		{"/system.slice-x/a.service", "/system.slice", false},
		{"/system.slic", "/system.slice", false},
		{"/anything", "/", true},
		{"/", "/", true},
	}
	for _, tt := range tests {
		if got := underCgroup(tt.c, tt.prefix); got != tt.want {
			t.Errorf("underCgroup(%q, %q) = %v, want %v", tt.c, tt.prefix, got, tt.want)
		}
	}
	for _, bad := range []string{"system.slice", "/system.slice/", "/a/../b", ""} {
		if cleanCgroupPrefix(bad) == nil {
			t.Errorf("cleanCgroupPrefix(%q) accepted it", bad)
		}
	}
}
