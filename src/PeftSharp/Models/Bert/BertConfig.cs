namespace PeftSharp.Models.Bert;

/// <summary>
/// Typed view of a BERT <c>config.json</c>. Shape keys (<c>vocab_size</c>, <c>hidden_size</c>, <c>num_hidden_layers</c>,
/// <c>num_attention_heads</c>, <c>intermediate_size</c>, <c>max_position_embeddings</c>, <c>type_vocab_size</c>) are
/// required; others take BertConfig's defaults. Only absolute position embeddings and encoder use are supported.
/// </summary>
public sealed record BertConfig
{
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int IntermediateSize { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    public required int TypeVocabSize { get; init; }
    public required string HiddenAct { get; init; }
    public required double LayerNormEps { get; init; }
    public required double HiddenDropout { get; init; }
    public required double AttentionDropout { get; init; }

    /// <summary><c>classifier_dropout</c>, or <c>hidden_dropout_prob</c> when null (as BertForSequenceClassification).</summary>
    public required double ClassifierDropout { get; init; }

    public required int? PadTokenId { get; init; }

    public int HeadDim => HiddenSize / NumAttentionHeads;

    public static BertConfig From(ModelConfig c)
    {
        var hidden = c.RequireInt("hidden_size");
        var heads = c.RequireInt("num_attention_heads");
        if (heads <= 0 || hidden % heads != 0)
        {
            throw new ConfigException($"{c.Source}: hidden_size {hidden} is not divisible by num_attention_heads {heads}");
        }
        var positionType = c.GetString("position_embedding_type") ?? "absolute";
        if (positionType != "absolute")
        {
            throw new ConfigException($"{c.Source}: position_embedding_type '{positionType}' is not supported (only 'absolute')");
        }
        if (c.GetBool("is_decoder", false) || c.GetBool("add_cross_attention", false))
        {
            throw new ConfigException($"{c.Source}: is_decoder / add_cross_attention BERT is not supported (encoder only)");
        }
        var hiddenDropout = c.GetDouble("hidden_dropout_prob", 0.1);
        return new BertConfig
        {
            VocabSize = c.RequireInt("vocab_size"),
            HiddenSize = hidden,
            NumHiddenLayers = c.RequireInt("num_hidden_layers"),
            NumAttentionHeads = heads,
            IntermediateSize = c.RequireInt("intermediate_size"),
            MaxPositionEmbeddings = c.RequireInt("max_position_embeddings"),
            TypeVocabSize = c.RequireInt("type_vocab_size"),
            HiddenAct = c.GetString("hidden_act") ?? "gelu",
            LayerNormEps = c.GetDouble("layer_norm_eps", 1e-12),
            HiddenDropout = hiddenDropout,
            AttentionDropout = c.GetDouble("attention_probs_dropout_prob", 0.1),
            ClassifierDropout = c.GetOptionalDouble("classifier_dropout") ?? hiddenDropout,
            PadTokenId = c.GetOptionalInt("pad_token_id") ?? 0,
        };
    }
}
