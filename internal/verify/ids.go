package verify

import (
	"io"

	"github.com/google/uuid"
)

// newID returns the id of a new verification, outbox message or event: a
// UUIDv7, whose first 48 bits are the time in milliseconds and whose last
// 62 are random. Ids made one after the other sort together, so each
// insert lands on the last page of its table's primary key (and of the
// outbox's index by verification) instead of a random one: a random key
// writes a page of its own per insert, and at a million rows those pages
// are seldom in the cache. The ids are names, not secrets (a code proves
// possession, and every lookup is within its owner); 62 random bits still
// make them unguessable.
func newID(random io.Reader) (string, error) {
	u, err := uuid.NewV7FromReader(random)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}
