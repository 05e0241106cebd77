package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// secretName is the root-only file in the state directory that the worker
// may obtain only through the parent.
const secretName = "secret"

// prepareState makes sure dir exists, belongs to us and is not writable by
// others, and holds the secret file (mode 0600, made on first start with 32
// random bytes in hex). It returns the secret's absolute path.
func prepareState(dir string, log *slog.Logger) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	if err := checkOwned(dir, fs.ModeDir, 0o022); err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, secretName)
	// Written in full under a temporary name, then linked into place: a
	// crash never leaves an empty secret behind, and link(2) never
	// replaces one that appeared meanwhile.
	tmp, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	_, err = tmp.WriteString(hex.EncodeToString(b) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("secret: %w", err)
	}
	err = os.Link(tmp.Name(), path) // CreateTemp made it 0600
	switch {
	case err == nil:
		log.Info("created the secret file", "path", path, "mode", "0600", "uid", os.Geteuid())
	case errors.Is(err, fs.ErrExist):
		if err := checkOwned(path, 0, 0o077); err != nil {
			return "", fmt.Errorf("secret: %w", err)
		}
	default:
		return "", fmt.Errorf("secret: %w", err)
	}
	return path, nil
}

// checkOwned checks that path is of type typ (not a symbolic link), is owned
// by our effective UID, and has none of the permission bits in forbidden.
func checkOwned(path string, typ fs.FileMode, forbidden fs.FileMode) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Type() != typ {
		return fmt.Errorf("%s is a %v, want a %v", path, kind(fi.Mode().Type()), kind(typ))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not by us (uid %d)", path, st.Uid, os.Geteuid())
	}
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return fmt.Errorf("%s has mode %#o, too open for it (fix: chmod %#o %s)", path, perm, perm&^forbidden, path)
	}
	return nil
}

func kind(t fs.FileMode) string {
	switch t {
	case 0:
		return "regular file"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSymlink:
		return "symbolic link"
	}
	return t.String()
}
