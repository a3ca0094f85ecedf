//! Small real HTTP servers on 127.0.0.1 for broker tests.
