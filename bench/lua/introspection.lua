-- POST /introspect token=<access token> (RFC 7662) by the client the token was issued to,
-- with HTTP Basic authentication. Static request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.path = "/introspect"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = env("BENCH_BASIC")
wrk.body = "token=" .. env("BENCH_ACCESS_TOKEN") .. "&token_type_hint=access_token"
