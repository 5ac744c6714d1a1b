"""Repository root of the Red music cog package.

Red's Downloader installs the `music/` folder; this file only marks the root for tools that
import the repository as a package. It defines nothing."""
