-- POST /token grant_type=client_credentials with HTTP Basic client authentication.
-- Static request: wrk builds it once, so the load generator stays cheap.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = env("BENCH_BASIC")
wrk.body = "grant_type=client_credentials"
