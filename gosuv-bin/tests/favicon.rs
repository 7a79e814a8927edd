//! The web page's icon at `/favicon.ico`: served without credentials (browsers may ask for
//! it without the page's), GET and HEAD only, and still behind the allow-list.

mod common;

use common::*;

#[test]
fn favicon_needs_no_auth_but_the_allow_list_still_applies() {
    let env = Env::http(true);
    let _srv = env.start();
    let r = env.http_req("GET", "/favicon.ico", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(r.body.starts_with("<svg "), "{}", r.body);
    // Only the icon: the page and a write to the same path still need the password.
    assert_eq!(env.http_req("GET", "/", &[], "").status, 401);
    assert_eq!(env.http_req("POST", "/favicon.ico", &[], "").status, 401);
    assert_eq!(env.unix_req("GET", "/favicon.ico", &[], "").status, 200);
    // HEAD like GET (a browser or a checker may ask only for the headers), without a body.
    let r = env.http_req("HEAD", "/favicon.ico", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.body, "");

    let env = Env::new(Setup {
        http_port: Some(free_port()),
        auth: true,
        ipfile: Some("10.9.0.0/16\n".into()),
        ..Setup::default()
    });
    let _srv = env.start();
    let r = env.http_req("GET", "/favicon.ico", &[], "");
    assert_eq!(r.status, 403, "{}", r.body);
}
