//! A fake of the Cloudflare v4 API (Workers scripts, Pages direct upload).
