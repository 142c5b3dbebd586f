-- A refresh-token rotation erases the sealed successors its session keeps
-- past the reuse grace. Through the session index that statement visited
-- every token the session ever had, so a rotation cost more the older its
-- session. This partial index holds only the rows that still carry a
-- successor (those rotated within the last minute), so the erase visits
-- the same few rows on a session's 1st rotation and its 3,000th; the spent
-- rows themselves stay, for reuse detection.
CREATE INDEX refresh_tokens_successor ON refresh_tokens (session_id, used_at) WHERE successor_sealed IS NOT NULL;
