//! Python bindings for gosuv. See issue 4.
