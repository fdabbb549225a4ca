//! CRLProcessor: imports Private CA's CRLs into the Roles Anywhere trust anchor.
//!
//! Not implemented in this revision; the CRL checks it will use live in `pki::check_crl`.
