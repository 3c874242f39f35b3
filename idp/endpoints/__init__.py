"""Flask blueprints, one per surface, registered from this one tuple."""

from . import (
    authorize,
    consent,
    discovery,
    health,
    introspect,
    login,
    logout,
    register,
    revoke,
    token,
    userinfo,
)

BLUEPRINTS = (
    discovery.bp,
    authorize.bp,
    login.bp,
    consent.bp,
    token.bp,
    userinfo.bp,
    revoke.bp,
    introspect.bp,
    logout.bp,
    register.bp,
    health.bp,
)
