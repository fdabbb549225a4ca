//! CRLProcessor's entry point. Not built yet (issue "Revocation and CRLs"): it refuses to start
//! rather than pretend, so a stack deployed from this revision fails loudly on a CRL event.

fn main() {
    eprintln!(
        "crl-processor: not implemented in this revision; CRLs are not imported to Roles Anywhere"
    );
    std::process::exit(1);
}
