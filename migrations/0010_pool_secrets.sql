-- 0010_pool_secrets: secrets every pool node shares, made once by
-- whichever node needs one first. session-resume is the key of the
-- session ids miners resume with: shared, a restarted node (or another
-- node, which then knows the id is not its own) can check them.
CREATE TABLE pool_secrets (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);
