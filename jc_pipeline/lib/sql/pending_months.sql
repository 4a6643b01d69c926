-- Months whose staged datapoints have not yet been rolled up to state level: a file's months stay pending until
-- the state roll-up of each of them has committed, so a run killed half-way is picked up by the next one.
CREATE TABLE IF NOT EXISTS rolled_up_file_months (
    file_id VARCHAR NOT NULL,
    month   DATE NOT NULL,
    PRIMARY KEY (file_id, month)
);
