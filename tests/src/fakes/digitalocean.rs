//! A fake of the DigitalOcean v2 API (droplets, keys, regions, sizes, Functions).
