"""finfeast: the product shell around the Feast repository.

Holds what every package shares and nothing that belongs to one of them: settings and profiles
(`config`), the offline table layer (`offline`), Feast store helpers (`store`), the CLI (`cli` and
`commands/`), and the end-to-end main job (`pipeline`). Importing it never imports Feast.
"""

__version__ = "0.1.0"
