"""Cell products from collection to bedside: ISBT 128 identifiers (identifier), the product
tree (product), release against the protocol's specification (release), chain of custody
(custody), the two-person bedside check (bedside), labels (label) and the whole history
(history). Pure values and functions; the store keeps them."""
