//! moto, the independent AWS fake, started on loopback.
