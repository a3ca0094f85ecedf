//! The project state in `.soar/`: resources, releases, audit trail, lock.
