-- The admin scope of API clients: a client created with
-- `tessera client create --admin` may call /admin/... (find, disable,
-- delete, import end users); others get 403 there. The index serves the
-- admin listing of users, which pages by (created_at, id).
ALTER TABLE clients ADD COLUMN admin INTEGER NOT NULL DEFAULT 0; -- 0 or 1, as in both dialects
CREATE INDEX users_created ON users (created_at, id);
