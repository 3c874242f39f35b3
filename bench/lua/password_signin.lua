-- POST /login with email, password and the login page's CSRF token: a whole password
-- sign-in (one argon2id verification at the production parameters, the user's row, the
-- audit event, a new session in the store). password_signin_<id>.txt has one line per
-- account, "<Cookie header>\t<form body>", as a returning browser would send them
-- (bench/backends.py Deployment.signin_requests); the accounts are signed in to in turn.
-- Success is "302 Found" to /signed-in; any other answer (a refused sign-in, 429, 400 for
-- a stale CSRF token) counts as an error.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local prepared, next_one

function init(args)
   prepared = {}
   for i, line in ipairs(read_pool("password_signin")) do
      local cookie, body = line:match("^([^\t]*)\t(.*)$")
      prepared[i] = wrk.format("POST", "/login", {
         ["Host"] = wrk.headers["Host"],
         ["Content-Type"] = "application/x-www-form-urlencoded",
         ["Cookie"] = cookie,
      }, body)
   end
   -- Threads start on different accounts, so that they do not move in step.
   next_one = id
end

function request()
   local r = prepared[(next_one - 1) % #prepared + 1]
   next_one = next_one + 1
   return r
end

function response(status, headers, body)
   local location = headers["Location"] or headers["location"] or ""
   if status ~= 302 or not location:find("/signed%-in$") then
      non2xx = non2xx + 1
   end
end
