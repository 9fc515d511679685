-- Frozen schema of version 1 (SQLite). Used by tests to build an old database; never edit.

CREATE TABLE eb_detail (
	id INTEGER NOT NULL, 
	eb_id INTEGER NOT NULL, 
	antenna VARCHAR(8) NOT NULL, 
	spw INTEGER NOT NULL, 
	scan INTEGER NOT NULL, 
	freq_ghz FLOAT, 
	time_s FLOAT, 
	tsys_k FLOAT, 
	amplitude FLOAT, 
	phase_deg FLOAT, 
	bp_ripple_db FLOAT, 
	flagged BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE
);
CREATE TABLE execution_block (
	id INTEGER NOT NULL, 
	uid VARCHAR(64) NOT NULL, 
	sb_name VARCHAR, 
	project VARCHAR, 
	source VARCHAR(64) NOT NULL, 
	band INTEGER NOT NULL, 
	array VARCHAR(8), 
	start_time DATETIME NOT NULL, 
	duration_s FLOAT, 
	n_antennas INTEGER, 
	pwv_mm FLOAT, 
	elevation_deg FLOAT, 
	tsys_median_k FLOAT, 
	phase_rms_deg FLOAT, 
	flagged_fraction FLOAT, 
	exec_fraction FLOAT, 
	freq_ghz FLOAT, 
	flux_jy FLOAT, 
	flux_err_jy FLOAT, 
	spectral_index FLOAT, 
	spectral_index_err FLOAT, 
	expected_flux_jy FLOAT, 
	expected_flux_err_jy FLOAT, 
	extra JSON, 
	imported_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE gold_eb (
	eb_id INTEGER NOT NULL, 
	value VARCHAR(16) NOT NULL, 
	set_by_id INTEGER NOT NULL, 
	reason VARCHAR, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (eb_id), 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE, 
	FOREIGN KEY(set_by_id) REFERENCES labeler (id)
);
CREATE TABLE label (
	id INTEGER NOT NULL, 
	eb_id INTEGER NOT NULL, 
	labeler_id INTEGER NOT NULL, 
	value VARCHAR(16), 
	comment VARCHAR, 
	reason VARCHAR, 
	seconds_on_eb FLOAT, 
	created_at DATETIME NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	client_event_id VARCHAR(64), 
	reverts_id INTEGER, 
	PRIMARY KEY (id), 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE, 
	FOREIGN KEY(labeler_id) REFERENCES labeler (id), 
	UNIQUE (client_event_id), 
	FOREIGN KEY(reverts_id) REFERENCES label (id)
);
CREATE TABLE labeler (
	id INTEGER NOT NULL, 
	name VARCHAR(80) NOT NULL, 
	role VARCHAR(8) NOT NULL, 
	active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE lease (
	eb_id INTEGER NOT NULL, 
	labeler_id INTEGER NOT NULL, 
	reason VARCHAR(32) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (eb_id), 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE, 
	FOREIGN KEY(labeler_id) REFERENCES labeler (id)
);
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE model_run (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	"trigger" VARCHAR(16) NOT NULL, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	heartbeat_at DATETIME, 
	progress FLOAT NOT NULL, 
	progress_text VARCHAR, 
	n_labels INTEGER NOT NULL, 
	strategy VARCHAR, 
	estimator VARCHAR, 
	feature_version VARCHAR, 
	features JSON, 
	metrics JSON, 
	artifact_path VARCHAR, 
	artifact_sha256 VARCHAR, 
	error VARCHAR, 
	pid INTEGER, 
	host VARCHAR, 
	PRIMARY KEY (id)
);
CREATE TABLE reference_outcome (
	eb_id INTEGER NOT NULL, 
	value VARCHAR(16) NOT NULL, 
	reasons VARCHAR NOT NULL, 
	PRIMARY KEY (eb_id), 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE
);
CREATE TABLE score (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	eb_id INTEGER NOT NULL, 
	p_pass FLOAT NOT NULL, 
	p_semipass FLOAT NOT NULL, 
	p_fail FLOAT NOT NULL, 
	uncertainty FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES model_run (id) ON DELETE CASCADE, 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE
);
CREATE TABLE score_rank (
	id INTEGER NOT NULL, 
	run_id INTEGER, 
	strategy VARCHAR(32) NOT NULL, 
	rank INTEGER NOT NULL, 
	eb_id INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES model_run (id) ON DELETE CASCADE, 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE
);
CREATE TABLE skip (
	id INTEGER NOT NULL, 
	eb_id INTEGER NOT NULL, 
	labeler_id INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (eb_id, labeler_id), 
	FOREIGN KEY(eb_id) REFERENCES execution_block (id) ON DELETE CASCADE, 
	FOREIGN KEY(labeler_id) REFERENCES labeler (id)
);
CREATE INDEX ix_eb_detail_eb ON eb_detail (eb_id);
CREATE INDEX ix_execution_block_band ON execution_block (band);
CREATE INDEX ix_execution_block_source ON execution_block (source);
CREATE INDEX ix_execution_block_start_time ON execution_block (start_time);
CREATE UNIQUE INDEX ix_execution_block_uid ON execution_block (uid);
CREATE INDEX ix_label_created_at ON label (created_at);
CREATE INDEX ix_label_eb_labeler ON label (eb_id, labeler_id, id);
CREATE INDEX ix_label_labeler ON label (labeler_id, id);
CREATE UNIQUE INDEX ix_labeler_name ON labeler (name);
CREATE INDEX ix_lease_expires_at ON lease (expires_at);
CREATE INDEX ix_lease_labeler_id ON lease (labeler_id);
CREATE INDEX ix_model_run_status ON model_run (status);
CREATE UNIQUE INDEX ix_model_run_version ON model_run (version);
CREATE INDEX ix_score_rank_queue ON score_rank (run_id, strategy, rank);
CREATE UNIQUE INDEX ix_score_run_eb ON score (run_id, eb_id);
CREATE INDEX ix_skip_labeler_id ON skip (labeler_id);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
