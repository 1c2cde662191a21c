using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models.Bert;

/// <summary>
/// transformers' <c>BertModel</c>: <c>embeddings</c>, <c>encoder</c>, <c>pooler</c>; post-LayerNorm blocks,
/// bidirectional attention with padding keys masked. Its <see cref="ModelOutput.Logits"/> is the last hidden state
/// <c>[B, T, hidden]</c> (<see cref="ModelTask.Encoder"/>), <see cref="ModelOutput.PooledOutput"/> the pooler's
/// <c>tanh(dense(h[:, 0]))</c>; for sentence-transformers' embedding use <see cref="Pooling.Mean"/>. Token types default
/// to 0 and positions to <c>0..T-1</c>. Loads checkpoints with or without the <c>bert.</c> prefix.
/// </summary>
public sealed class BertModel : PretrainedModel
{
    public BertEmbeddings embeddings;
    public BertEncoder encoder;
    public BertPooler pooler;

    public BertModel(ModelConfig config, ModelLoadOptions? options = null) : base("BertModel", config)
    {
        options ??= new ModelLoadOptions();
        TypedConfig = BertConfig.From(config);
        embeddings = new BertEmbeddings(TypedConfig, options.Device, options.DType);
        encoder = new BertEncoder(TypedConfig, config, options.Device, options.DType);
        pooler = new BertPooler(TypedConfig, options.Device, options.DType);
        RegisterComponents();
    }

    /// <summary>The typed config.</summary>
    public BertConfig TypedConfig { get; }

    public override ModelTask Task => ModelTask.Encoder;

    public override string Architecture => "BertModel";

    public override IReadOnlyList<string> OutputHeadNames { get; } = [];

    public override int NumLayers => TypedConfig.NumHiddenLayers;

    protected internal override string BaseModelPrefix => "bert";

    protected internal override bool IsIgnorableCheckpointKey(string key) => IsStoredIdBuffer(key);

    /// <summary>Older BERT checkpoints store the <c>position_ids</c> / <c>token_type_ids</c> buffers; transformers skips them.</summary>
    internal static bool IsStoredIdBuffer(string key) =>
        key.EndsWith("embeddings.position_ids", StringComparison.Ordinal) || key.EndsWith("embeddings.token_type_ids", StringComparison.Ordinal);

    /// <summary>An encoder keeps no cache: always throws.</summary>
    public override KvCache CreateCache() =>
        throw new PeftException($"{Architecture} is an encoder; it has no KV cache");

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        if (input.Cache is not null)
        {
            throw new PeftException($"{Architecture} is an encoder; it takes no KV cache");
        }
        var c = TypedConfig;
        var ids = input.InputIds;
        InputChecks.Ids(Architecture, ids, c.VocabSize, "input_ids", "vocab_size");
        var batch = ids.shape[0];
        var length = ids.shape[1];
        if (input.TokenTypeIds is not null)
        {
            InputChecks.Ids(Architecture, input.TokenTypeIds, c.TypeVocabSize, "token_type_ids", "type_vocab_size", ids);
        }
        if (input.PositionIds is not null)
        {
            InputChecks.Ids(Architecture, input.PositionIds, c.MaxPositionEmbeddings, "position_ids", "max_position_embeddings", ids);
        }
        else if (length > c.MaxPositionEmbeddings)
        {
            throw new PeftException($"{Architecture}: {length} tokens exceed max_position_embeddings {c.MaxPositionEmbeddings}");
        }
        var tokenTypes = input.TokenTypeIds ?? torch.zeros([batch, length], dtype: ScalarType.Int64, device: ids.device);
        var positions = input.PositionIds ?? AttentionMasks.DefaultPositionIds(batch, length, 0, ids.device);
        var hidden = embeddings.call(ids, tokenTypes, positions);
        var mask = AttentionMasks.Build(input.AttentionMask, batch, length, 0, causal: false, hidden.dtype, hidden.device);
        hidden = encoder.call(hidden, mask);
        var pooled = pooler.call(hidden);
        hidden = hidden.MoveToOuterDisposeScope();
        return new ModelOutput(hidden, hidden, pooled.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// transformers' <c>BertForSequenceClassification</c>: <c>bert</c> (<see cref="BertModel"/>) and <c>classifier</c>
/// (<c>[num_labels, hidden]</c> with bias) on the pooler output. Logits <c>[B, num_labels]</c>.
/// </summary>
public sealed class BertForSequenceClassification : PretrainedModel
{
    public BertModel bert;
    public nn.Module<Tensor, Tensor> classifier;

    public BertForSequenceClassification(ModelConfig config, ModelLoadOptions? options = null) : base("BertForSequenceClassification", config)
    {
        options ??= new ModelLoadOptions();
        NumLabels = options.NumLabels ?? config.NumLabels;
        bert = new BertModel(config, options);
        classifier = nn.Linear(bert.TypedConfig.HiddenSize, NumLabels, true, options.Device, options.DType);
        RegisterComponents();
    }

    /// <summary>Rows of <c>classifier</c>.</summary>
    public int NumLabels { get; }

    public override ModelTask Task => ModelTask.SequenceClassification;

    public override string Architecture => "BertForSequenceClassification";

    public override IReadOnlyList<string> OutputHeadNames { get; } = ["classifier"];

    public override int NumLayers => bert.NumLayers;

    protected internal override string BaseModelPrefix => "bert";

    protected internal override bool IsIgnorableCheckpointKey(string key) => BertModel.IsStoredIdBuffer(key);

    /// <summary>An encoder keeps no cache: always throws.</summary>
    public override KvCache CreateCache() => bert.CreateCache();

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = torch.NewDisposeScope();
        var output = bert.call(input);
        var pooled = nn.functional.dropout(output.PooledOutput!, bert.TypedConfig.ClassifierDropout, training);
        var logits = classifier.call(pooled);
        return new ModelOutput(
            logits.MoveToOuterDisposeScope(),
            output.LastHiddenState!.MoveToOuterDisposeScope(),
            output.PooledOutput!.MoveToOuterDisposeScope());
    }
}
