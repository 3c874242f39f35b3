"""The step-up chain: second factors after primary sign-in (ARCHITECTURE "The step-up chain")."""
