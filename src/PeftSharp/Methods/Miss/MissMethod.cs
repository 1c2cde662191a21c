using PeftSharp.Core;

namespace PeftSharp.Methods.Miss;

/// <summary>Registry entry for MiSS (PEFT <c>MISS</c>). Bone (<c>BONE</c>) is registered separately: its files differ.</summary>
public sealed class MissMethod : IAdapterMethod
{
    public string Name => "miss";

    public string PeftType => MissConfig.Type;

    public string Description => "Matrix Shard Sharing: one block shared by all input shards; \"bat\" weight-guided r×r blocks, \"mini\" r×mini_r (arXiv 2409.15371)";

    public string ParameterCountFormula => "r·d_out (bat: d_out/r blocks of r×r = r·d_out; mini: r·mini_r)";

    public Type ConfigType => typeof(MissConfig);

    /// <summary>PEFT's MiSS adapts <c>nn.Linear</c> only.</summary>
    public bool Supports(BaseLayer layer) => layer.Kind == BaseLayerKind.Linear;

    public AdapterLayer CreateLayer(BaseLayer layer) => new MissLayer(layer);
}
