namespace PeftSharp.Models.Gpt2;

/// <summary>
/// Typed view of a GPT-2 <c>config.json</c>. Shape keys (<c>vocab_size</c>, <c>n_embd</c>, <c>n_layer</c>, <c>n_head</c>,
/// <c>n_positions</c>) are required; <c>n_inner</c> null means <c>4·n_embd</c> (GPT2Config's documented rule); other keys
/// take GPT2Config's defaults.
/// </summary>
public sealed record Gpt2Config
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int MaxPositions { get; init; }
    public required int InnerSize { get; init; }
    public required string Activation { get; init; }
    public required double LayerNormEps { get; init; }
    public required bool ScaleAttnWeights { get; init; }
    public required bool ScaleAttnByInverseLayerIdx { get; init; }
    public required bool TieWordEmbeddings { get; init; }
    public required double AttnDropout { get; init; }
    public required double ResidDropout { get; init; }
    public required double EmbdDropout { get; init; }
    public required int? PadTokenId { get; init; }

    public int HeadDim => HiddenSize / NumHeads;

    public static Gpt2Config From(ModelConfig c)
    {
        var hidden = c.RequireInt("n_embd");
        var heads = c.RequireInt("n_head");
        if (heads <= 0 || hidden % heads != 0)
        {
            throw new ConfigException($"{c.Source}: n_embd {hidden} is not divisible by n_head {heads}");
        }
        return new Gpt2Config
        {
            VocabSize = c.RequireInt("vocab_size"),
            HiddenSize = hidden,
            NumLayers = c.RequireInt("n_layer"),
            NumHeads = heads,
            MaxPositions = c.RequireInt("n_positions"),
            InnerSize = c.GetOptionalInt("n_inner") ?? 4 * hidden,
            Activation = c.GetString("activation_function") ?? "gelu_new",
            LayerNormEps = c.GetDouble("layer_norm_epsilon", 1e-5),
            ScaleAttnWeights = c.GetBool("scale_attn_weights", true),
            ScaleAttnByInverseLayerIdx = c.GetBool("scale_attn_by_inverse_layer_idx", false),
            TieWordEmbeddings = c.GetBool("tie_word_embeddings", true),
            AttnDropout = c.GetDouble("attn_pdrop", 0.1),
            ResidDropout = c.GetDouble("resid_pdrop", 0.1),
            EmbdDropout = c.GetDouble("embd_pdrop", 0.1),
            PadTokenId = c.PadTokenId,
        };
    }
}
