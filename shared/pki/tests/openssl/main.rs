//! Integration tests of the `pki` crate on real material made by the `openssl` CLI.

mod cert;
mod crl;
mod csr;
mod support;
