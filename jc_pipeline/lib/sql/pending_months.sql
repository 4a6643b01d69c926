-- Months whose staged datapoints have not yet been rolled up to state level: a file's months stay pending until
-- the state roll-up of each of them has committed, so a run killed half-way is picked up by the next one.
CREATE TABLE IF NOT EXISTS rolled_up_file_months (
    file_id VARCHAR NOT NULL,
    month   DATE NOT NULL,
    PRIMARY KEY (file_id, month)
);

-- Roll-ups committed to the store, and how many of them the published warehouse holds: a run stopped after a
-- roll-up and before its publish leaves rolled_up > published, so the next run publishes although no month is
-- pending any more. One row.
CREATE TABLE IF NOT EXISTS publish_generations (
    rolled_up BIGINT NOT NULL,
    published BIGINT NOT NULL
);
INSERT INTO publish_generations SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM publish_generations);
