"""Arrow schemas of the feature tables.

Vectors are ``fixed_size_list<float32>[d]`` so that DuckDB reads them as ``FLOAT[d]`` arrays and
``array_cosine_similarity(a.vector, b.vector)`` works directly. ``d`` depends on the encoder, so the
schemas are built by functions.
"""

from __future__ import annotations

import pyarrow as pa

#: aoi_id of the pooled caption vector in the text table.
SENTENCE_AOI = "sentence"
#: aoi_id of the mean-pooled image vector in the image table.
GLOBAL_AOI = "global"


def vector_type(dim: int) -> pa.DataType:
    """``fixed_size_list<float32>[dim]``."""
    return pa.list_(pa.float32(), dim)


def text_features_schema(dim: int) -> pa.Schema:
    """One row per caption word (``word:<i>``) plus one ``sentence`` row per stimulus."""
    return pa.schema(
        [
            ("stimulus_id", pa.string()),
            ("aoi_id", pa.string()),  # "sentence" or "word:<i>"
            ("word_index", pa.int32()),  # -1 for the sentence row
            ("word", pa.string()),  # the word as printed; the whole caption for the sentence row
            ("wordpieces", pa.list_(pa.string())),  # sentence row: all tokens incl. [CLS]/[SEP]
            ("wordpiece_ids", pa.list_(pa.int32())),
            ("vector", vector_type(dim)),  # NaN when the word lost all its pieces to truncation
            ("encoder_id", pa.string()),
            ("cache_key", pa.string()),
        ]
    )


def image_features_schema(dim: int) -> pa.Schema:
    """One ``global`` row per stimulus plus one row per object AOI (``obj:<label>``)."""
    return pa.schema(
        [
            ("stimulus_id", pa.string()),
            ("aoi_id", pa.string()),  # "global" or "obj:<label>"
            ("vector", vector_type(dim)),  # NaN when the AOI covers no grid cell
            ("coverage_cells", pa.float32()),  # sum of the AOI mask's cell coverage; grid size for global
            ("encoder_id", pa.string()),
            ("cache_key", pa.string()),  # global: key of the grid entry; objects: of the pooled entry
        ]
    )


#: The final feature grid of each image, row-major ``channels × grid_h × grid_w``.
IMAGE_FEATURE_GRIDS = pa.schema(
    [
        ("stimulus_id", pa.string()),
        ("grid_h", pa.int32()),
        ("grid_w", pa.int32()),
        ("channels", pa.int32()),
        ("grid", pa.list_(pa.float32())),
        ("encoder_id", pa.string()),
        ("cache_key", pa.string()),
    ]
)


def assemble_vector_table(pieces: list[pa.Table], schema: pa.Schema, dim: int) -> pa.Table:
    """Concatenate per-stimulus tables and turn their variable-length ``vector`` into ``float[dim]``.

    Raises
    ------
    ValueError
        When a vector does not have ``dim`` values (e.g. a corrupt or foreign cache entry).
    """
    if not pieces:
        return schema.empty_table()
    t = pa.concat_tables(pieces)
    vec = t.column("vector").combine_chunks()
    lengths = vec.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != dim).any():
        raise ValueError(f"vectors of length {sorted(set(lengths.tolist()))} where {dim} was expected")
    fixed = pa.FixedSizeListArray.from_arrays(vec.flatten().cast(pa.float32()), type=vector_type(dim))
    t = t.set_column(t.schema.get_field_index("vector"), "vector", fixed)
    return t.select(schema.names).cast(schema)
