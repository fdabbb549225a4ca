//! Wire-protocol emulators (placeholder).
