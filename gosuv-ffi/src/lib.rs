//! C ABI over the gosuv supervisor. See issue 3.
