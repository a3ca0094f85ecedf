//! Real OpenSSH `sshd` test hosts on loopback, each with its own host key and root.
