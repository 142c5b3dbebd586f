package config

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Mode says what loading the configuration may do to the data directory.
type Mode int

const (
	// Create makes the data directory and its keys when they are missing
	// (serve, and commands run with --init).
	Create Mode = iota
	// Existing requires the SQLite database and the key files to exist
	// already: an operator command run from the wrong directory must not
	// make a second, empty Tessera whose tokens no server accepts.
	Existing
	// ReadOnly creates nothing and requires nothing (tessera config); keys
	// that do not exist yet are left empty.
	ReadOnly
)

// ErrNoData is the error of Existing when the data directory holds no
// Tessera database or keys.
var ErrNoData = errors.New("no Tessera data")

// noData is ErrNoData naming the directory, as given and absolute (the
// usual mistake is a relative one, from another working directory), and
// the file it lacks.
func noData(dir, missing string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return fmt.Errorf("%w in %s (TESSERA_DATA_DIR=%s): it has no %s", ErrNoData, abs, dir, missing)
}
