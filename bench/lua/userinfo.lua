-- GET /userinfo with a bearer access token (scope openid profile email offline_access).
-- Static request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/userinfo"
wrk.headers["Authorization"] = "Bearer " .. env("BENCH_ACCESS_TOKEN")
